"""Catalog import: item and user records read, validated one by one and upserted in batches."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ValidationError

from penchant.errors import InvalidInput
from penchant.ingest.readers import ROW, OnMalformed, read_chunks
from penchant.ingest.rejects import Rejects
from penchant.ingest.source import SourceFormat, source_columns
from penchant.privacy.pseudonyms import Pseudonyms
from penchant.schema import Item, User
from penchant.store.base import CatalogStore

#: (1-based record number in the file, the record's fields) of an item or user file.
CatalogRow = tuple[int | None, dict[str, Any]]
CatalogKind = Literal["items", "users"]
RowReader = Callable[[Path, Rejects], Iterator[CatalogRow]]

_UPSERT_BATCH = 5_000


@dataclass(frozen=True)
class CatalogReport:
    """What a catalog import did. `rows_read = stored + rejected`."""

    path: str
    kind: str
    rows_read: int
    stored: int
    rejected: int
    seconds: float
    rejects_path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able values."""
        return asdict(self)


def import_catalog(
    catalog: CatalogStore,
    tenant: str,
    kind: CatalogKind,
    path: Path,
    rows: Iterable[CatalogRow],
    rejects: Rejects,
    pseudonyms: Pseudonyms | None = None,
) -> CatalogReport:
    """Validate item or user records one by one and upsert the valid ones in batches.

    Args:
        catalog: the catalog store.
        tenant: the tenant the records belong to.
        kind: `items` (validated as `schema.Item`) or `users` (`schema.User`).
        path: the file, for the report.
        rows: the records, with their numbers in the file.
        rejects: receives invalid records, with the reasons; it is closed here.
        pseudonyms: replaces the ids of user records before they are stored.

    Returns:
        The counts of the import; records are stored when counted.
    """
    started = time.perf_counter()
    model: type[BaseModel] = Item if kind == "items" else User
    upsert = catalog.upsert_items if kind == "items" else catalog.upsert_users
    renamed = kind == "users" and pseudonyms is not None and pseudonyms.enabled
    batch: list[Any] = []
    stored = 0
    try:
        for number, record in rows:
            try:
                valid = model.model_validate(record)
            except ValidationError as exc:
                rejects.write(number, record, [_reason(e) for e in exc.errors()])
                continue
            if renamed:
                assert pseudonyms is not None and isinstance(valid, User)
                valid = pseudonyms.record(tenant, valid)
            batch.append(valid)
            if len(batch) >= _UPSERT_BATCH:
                stored += upsert(tenant, batch)
                batch = []
        if batch:
            stored += upsert(tenant, batch)
    finally:
        rejects.close()
    return CatalogReport(
        path=str(path),
        kind=kind,
        rows_read=stored + rejects.count,
        stored=stored,
        rejected=rejects.count,
        seconds=round(time.perf_counter() - started, 3),
        rejects_path=str(rejects.path) if rejects.count else None,
    )


def _reason(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def file_rows(
    path: Path, source: SourceFormat, mapping: Mapping[str, str], kind: CatalogKind
) -> RowReader:
    """A reader of a plain item or user file (CSV, JSONL, Parquet) with a column mapping.

    Columns named like a field of `Item` or `User` fill it (`item_id` or `user_id` fill
    `id`); `--map col=field` renames; every other column becomes an attribute. In text
    files, list fields (categories, tags) are `|`-separated or a JSON list, and
    attributes or consent are a JSON object.
    """
    fields = set((Item if kind == "items" else User).model_fields)
    alias = "item_id" if kind == "items" else "user_id"
    for column, target in mapping.items():
        if target not in fields:
            choices = ", ".join(sorted(fields))
            raise InvalidInput(f"--map {column}={target}: field must be one of {choices}")

    def shape(record: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for column, value in record.items():
            if value is None:  # an empty cell: the field keeps its default
                continue
            target = mapping.get(column) or ("id" if column == alias else column)
            if target in fields:
                out[target] = _decoded(target, value)
            else:
                extra[column] = value
        if extra:
            out["attributes"] = {**extra, **(out.get("attributes") or {})}
        return out

    def read(file: Path, rejects: Rejects) -> Iterator[CatalogRow]:
        rows: Iterator[CatalogRow] = (
            _json_lines(file, rejects)
            if source.kind == "jsonl"
            else plain_rows(file, source, malformed_to(rejects))
        )
        for number, record in rows:
            yield number, shape(record)

    return read


def _json_lines(path: Path, rejects: Rejects) -> Iterator[CatalogRow]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                rejects.write(number, {"line": line.decode("utf-8", "replace").strip()}, [str(exc)])
                continue
            if not isinstance(record, dict):
                rejects.write(number, {"line": line.decode().strip()}, ["not a JSON object"])
                continue
            yield number, record


def _decoded(name: str, value: Any) -> Any:
    """Text values of structured fields, decoded: lists from `a|b` or JSON, objects from JSON."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if name in ("categories", "tags"):
            if text.startswith("["):
                return orjson.loads(text)
            return [part.strip() for part in text.split("|") if part.strip()]
        if name in ("attributes", "consent") and text.startswith("{"):
            return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass  # left as text, which the model rejects with a reason
    return value


def plain_rows(
    path: Path, source: SourceFormat, on_malformed: OnMalformed, columns: list[str] | None = None
) -> Iterator[tuple[int | None, dict[str, Any]]]:
    wanted = columns or source_columns(path, source) or []
    for table, _ in read_chunks(path, source, wanted, _UPSERT_BATCH, on_malformed):
        for record in table.to_pylist():
            yield record.pop(ROW), record


def malformed_to(rejects: Rejects) -> OnMalformed:
    def malformed(row: int | None, raw: str, why: str) -> None:
        rejects.write(row, {"line": raw}, [why])

    return malformed
