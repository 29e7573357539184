"""Import presets (`--format`) for plain files and known datasets, and catalog-file import."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ValidationError

from penchant.errors import InvalidInput
from penchant.ingest.bulk import EventSpec, Rejects
from penchant.ingest.readers import ROW, OnMalformed, SourceFormat, read_chunks, source_columns
from penchant.schema import Item, User
from penchant.store.base import CatalogStore

#: (1-based record number in the file, the record's fields) of an item or user file.
CatalogRow = tuple[int | None, dict[str, Any]]
CatalogKind = Literal["items", "users"]
RowReader = Callable[[Path, Rejects], Iterator[CatalogRow]]

_UPSERT_BATCH = 5_000
_MAX_TAGS = 200


@dataclass(frozen=True)
class Preset:
    """How to import one kind of file.

    Attributes:
        name: the `--format` value.
        description: one line for `--help` and the docs.
        events: how to read an event file of this format.
        items_file: the item file that sits beside such an event file, imported with it.
        users_file: the user file that sits beside such an event file, imported with it.
        items: reads an item file of this format (None: use the generic file reader).
        users: reads a user file of this format (None: use the generic file reader).
    """

    name: str
    description: str
    events: EventSpec
    items_file: str | None = None
    users_file: str | None = None
    items: RowReader | None = None
    users: RowReader | None = None


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


def guess_format(path: Path) -> str:
    """The plain format of a file from its name: csv, tsv, jsonl or parquet."""
    suffix = path.suffix.lower()
    formats = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
    formats.update({".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"})
    if suffix not in formats:
        raise InvalidInput(f"{path.name}: cannot tell the format from the name; pass --format")
    return formats[suffix]


def get_preset(name: str) -> Preset:
    """The preset of a `--format` name.

    Raises:
        InvalidInput: no such preset.
    """
    if name not in PRESETS:
        raise InvalidInput(f"unknown format {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]


def import_catalog(
    catalog: CatalogStore,
    tenant: str,
    kind: CatalogKind,
    path: Path,
    rows: Iterable[CatalogRow],
    rejects: Rejects,
) -> CatalogReport:
    """Validate item or user records one by one and upsert the valid ones in batches.

    Args:
        catalog: the catalog store.
        tenant: the tenant the records belong to.
        kind: `items` (validated as `schema.Item`) or `users` (`schema.User`).
        path: the file, for the report.
        rows: the records, with their numbers in the file.
        rejects: receives invalid records, with the reasons; it is closed here.

    Returns:
        The counts of the import; records are stored when counted.
    """
    started = time.perf_counter()
    model: type[BaseModel] = Item if kind == "items" else User
    upsert = catalog.upsert_items if kind == "items" else catalog.upsert_users
    batch: list[Any] = []
    stored = 0
    try:
        for number, record in rows:
            try:
                batch.append(model.model_validate(record))
            except ValidationError as exc:
                rejects.write(number, record, [_reason(e) for e in exc.errors()])
                continue
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
            else _plain_rows(file, source, _malformed_to(rejects))
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


# -- presets for known datasets ---------------------------------------------------------------
def _ml100k_items(path: Path, rejects: Rejects) -> Iterator[CatalogRow]:
    """u.item: `id|title|release date|video date|IMDb URL|19 genre flags`, latin-1."""
    genre_file = path.parent / "u.genre"
    if not genre_file.is_file():
        raise InvalidInput(f"{genre_file}: needed to name the genres of {path.name}")
    genres: dict[int, str] = {}
    for line in genre_file.read_text(encoding="latin-1").splitlines():
        if "|" in line:
            name, index = line.rsplit("|", 1)
            genres[int(index)] = name
    flags = tuple(f"g{i}" for i in range(len(genres)))
    source = SourceFormat(
        "csv",
        delimiter="|",
        header=False,
        column_names=("id", "title", "released", "video", "url", *flags),
        encoding="latin1",
        quote=False,
    )
    for number, row in _plain_rows(path, source, _malformed_to(rejects)):
        released = row["released"]
        yield (
            number,
            {
                "id": row["id"],
                "title": row["title"],
                # The first flag is "unknown": no genre, rather than a genre called unknown.
                "categories": [genres[i] for i in range(1, len(genres)) if row[f"g{i}"] == "1"],
                "published_at": datetime.strptime(released, "%d-%b-%Y").replace(tzinfo=UTC)
                if released
                else None,
                "attributes": {"imdb_url": row["url"]} if row["url"] else {},
            },
        )


def _ml100k_users(path: Path, rejects: Rejects) -> Iterator[CatalogRow]:
    """u.user: `id|age|gender|occupation|zip`."""
    names = ("id", "age", "gender", "occupation", "zip")
    source = SourceFormat("csv", delimiter="|", header=False, column_names=names, quote=False)
    for number, row in _plain_rows(path, source, _malformed_to(rejects)):
        age = row.pop("age")
        attributes = {k: v for k, v in row.items() if k != "id" and v is not None}
        if age is not None and age.isdigit():
            attributes["age"] = int(age)
        yield number, {"id": row["id"], "attributes": attributes}


_YEAR = re.compile(r"\((\d{4})\)\s*$")


def _movielens_items(path: Path, rejects: Rejects) -> Iterator[CatalogRow]:
    """movies.csv `movieId,title,genres`, with the distinct tags of tags.csv beside it."""
    tags = _movielens_tags(path.parent / "tags.csv")
    for number, row in _plain_rows(path, SourceFormat("csv"), _malformed_to(rejects)):
        genres = row["genres"] or ""
        year = _YEAR.search(row["title"] or "")
        yield (
            number,
            {
                "id": row["movieId"],
                "title": row["title"],
                "categories": [] if genres.startswith("(no genres") else genres.split("|"),
                "tags": tags.get(row["movieId"], []),
                "attributes": {"year": int(year.group(1))} if year else {},
            },
        )


def _movielens_tags(path: Path) -> dict[str, list[str]]:
    """Distinct tags per movie, most applied first (case-insensitive), at most 200 each."""
    if not path.is_file():
        return {}
    counts: dict[str, Counter[str]] = {}
    spelling: dict[str, str] = {}
    # Tags only decorate items: a malformed tag line is skipped rather than reported.
    skip: OnMalformed = lambda row, raw, why: None  # noqa: E731
    for _, row in _plain_rows(path, SourceFormat("csv"), skip, ["movieId", "tag"]):
        tag = (row["tag"] or "").strip()
        if row["movieId"] is None or not tag or len(tag) > 256:
            continue
        key = tag.lower()
        spelling.setdefault(key, tag)
        counts.setdefault(row["movieId"], Counter())[key] += 1
    return {
        movie: [spelling[key] for key, _ in counter.most_common(_MAX_TAGS)]
        for movie, counter in counts.items()
    }


def _plain_rows(
    path: Path, source: SourceFormat, on_malformed: OnMalformed, columns: list[str] | None = None
) -> Iterator[tuple[int | None, dict[str, Any]]]:
    wanted = columns or source_columns(path, source) or []
    for table, _ in read_chunks(path, source, wanted, _UPSERT_BATCH, on_malformed):
        for record in table.to_pylist():
            yield record.pop(ROW), record


def _malformed_to(rejects: Rejects) -> OnMalformed:
    def malformed(row: int | None, raw: str, why: str) -> None:
        rejects.write(row, {"line": raw}, [why])

    return malformed


def _plain(name: str, source: SourceFormat, description: str) -> Preset:
    return Preset(name, description, EventSpec(source))


PRESETS: dict[str, Preset] = {
    "csv": _plain("csv", SourceFormat("csv"), "comma-separated with a header row"),
    "tsv": _plain("tsv", SourceFormat("csv", delimiter="\t"), "tab-separated with a header"),
    "jsonl": _plain("jsonl", SourceFormat("jsonl"), "one JSON object a line"),
    "parquet": _plain("parquet", SourceFormat("parquet"), "Apache Parquet"),
    "movielens-100k": Preset(
        "movielens-100k",
        "MovieLens 100K u.data (user item rating unix-seconds, tab-separated); "
        "u.item, u.genre and u.user beside it give the catalog",
        EventSpec(
            SourceFormat(
                "csv",
                delimiter="\t",
                header=False,
                column_names=("user_id", "item_id", "value", "timestamp"),
                quote=False,
            ),
            event_type="rating",
            timestamp_unit="s",
        ),
        items_file="u.item",
        users_file="u.user",
        items=_ml100k_items,
        users=_ml100k_users,
    ),
    "movielens": Preset(
        "movielens",
        "MovieLens latest ratings.csv (userId,movieId,rating,timestamp); movies.csv and "
        "tags.csv beside it give the items and their tags",
        EventSpec(
            SourceFormat("csv"),
            mapping={
                "userId": "user_id",
                "movieId": "item_id",
                "rating": "value",
                "timestamp": "timestamp",
            },
            event_type="rating",
            timestamp_unit="s",
        ),
        items_file="movies.csv",
        items=_movielens_items,
    ),
    "amazon-beauty": Preset(
        "amazon-beauty",
        "Amazon Beauty sequences (`user item1 item2 ...` a line, oldest first) as purchase "
        "events one second apart from 2014-01-01, in file order (the file has no times)",
        EventSpec(SourceFormat("sequence", delimiter=" "), event_type="purchase"),
    ),
}
