"""Bulk import of event files: streamed in chunks, validated column-wise, stored idempotently."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from penchant.errors import InvalidInput
from penchant.ingest.columns import (
    Problems,
    TimestampUnit,
    checked_id,
    checked_values,
    chunk_column,
    contexts,
    text,
    timestamps,
)
from penchant.ingest.readers import ROW, read_chunks
from penchant.ingest.rejects import Rejects
from penchant.ingest.source import SourceFormat, file_sha256, source_columns
from penchant.privacy.pseudonyms import Pseudonyms
from penchant.schema import EventVocabulary
from penchant.schema.common import to_micros
from penchant.store.base import EVENT_TABLE_SCHEMA, EventStore

#: The event fields a source column can be mapped to.
FIELDS = ("event_id", "user_id", "session_id", "item_id", "type", "value", "timestamp", "context")
DEFAULT_CHUNK_ROWS = 131_072

#: Told after each stored chunk: (bytes of the file read so far, rows done so far).
OnProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class EventSpec:
    """What the columns of an event file mean.

    Attributes:
        source: how to parse the file.
        mapping: source column -> event field (one of `FIELDS`); a column named like a field
            maps to it without being listed.
        event_type: one type for every row (e.g. `rating`); overrides any type column.
        timestamp_unit: how to read the timestamp column. Without a timestamp column every
            row gets the time of the import, as events sent to the API do.

    A `context` column holds a JSON object (text, or nested in JSONL and Parquet) checked
    like `schema.EventContext`, one row at a time: only rows with a context pay for it.
    """

    source: SourceFormat
    mapping: Mapping[str, str] = field(default_factory=dict)
    event_type: str | None = None
    timestamp_unit: TimestampUnit = "auto"


@dataclass(frozen=True)
class ImportReport:
    """What an import did. `rows_read = stored + duplicates + rejected`.

    Attributes:
        path: the file.
        rows_read: records read from the file, malformed ones included.
        stored: events newly stored.
        duplicates: rows not stored because they already were (same event_id, or a chunk
            of the same file imported before).
        rejected: rows that failed validation, written to `rejects_path`.
        chunks: chunks the file was split into.
        skipped_chunks: chunks an earlier import had stored, skipped whole (a chunk of
            rejected rows only is never stored, so never skipped either).
        seconds: wall time.
        events_per_second: rows read per second.
        rejects_path: the rejects file, or None when no row was rejected.
        catalog: reports of companion catalog files imported with the events, by kind.
    """

    path: str
    rows_read: int
    stored: int
    duplicates: int
    rejected: int
    chunks: int
    skipped_chunks: int
    seconds: float
    events_per_second: float
    rejects_path: str | None
    catalog: dict[str, dict[str, Any]] = field(default_factory=dict)


def plan_columns(
    available: Sequence[str] | None, spec: EventSpec, vocabulary: EventVocabulary
) -> dict[str, str]:
    """Resolve which source column feeds each event field.

    Args:
        available: the columns of the file, or None when any may appear (JSONL).
        spec: the mapping and the constant type.
        vocabulary: the accepted event types.

    Returns:
        field -> source column, for the fields the file provides.

    Raises:
        InvalidInput: a mapping names an unknown field or a missing column, or the file
            cannot give every event a user or session and a type.
    """
    plan: dict[str, str] = {}
    for column, target in spec.mapping.items():
        if target not in FIELDS:
            raise InvalidInput(f"--map {column}={target}: field must be one of {', '.join(FIELDS)}")
        if available is not None and column not in available:
            raise InvalidInput(f"--map {column}={target}: the file has no column {column!r}")
        plan[target] = column
    present = FIELDS if available is None else available
    for name in FIELDS:
        if name not in plan and name in present and name not in spec.mapping:
            plan[name] = name
    if spec.event_type is not None:
        plan.pop("type", None)
        if spec.event_type not in vocabulary:
            raise InvalidInput(
                f"--type {spec.event_type!r} is not a known event type; add it to "
                "events.custom_types in penchant.toml to allow it"
            )
    columns = ", ".join(present) or "none found"
    if "user_id" not in plan and "session_id" not in plan:
        raise InvalidInput(f"no user_id or session_id column (columns: {columns}); use --map")
    if "type" not in plan and spec.event_type is None:
        raise InvalidInput(f"no type column (columns: {columns}); use --map or --type")
    return plan


def import_events(
    events: EventStore,
    tenant: str,
    path: Path,
    spec: EventSpec,
    *,
    vocabulary: EventVocabulary,
    rejects: Path,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    on_progress: OnProgress | None = None,
    pseudonyms: Pseudonyms | None = None,
) -> ImportReport:
    """Import an event file chunk by chunk; bad rows go to `rejects` and the import goes on.

    Each chunk is stored with `batch_key = "<sha256 of the file>:<chunk>:<chunk_rows>"`, so
    importing the same file again stores nothing, and an import that broke off resumes at
    the first chunk it had not stored. The key names the bytes of the file, so importing the
    same file with other options stores nothing either (erase the events first). Rows with
    an event_id are also idempotent one by one. A second thread parses and validates the
    next chunk while one is being stored.

    Args:
        events: the event store.
        tenant: the tenant the events belong to.
        path: the file.
        spec: how to read it.
        vocabulary: the accepted event types.
        rejects: where rejected rows are written (JSONL); created only if a row is rejected.
        chunk_rows: rows per chunk, and per store transaction.
        on_progress: told after every stored chunk.
        pseudonyms: replaces the user ids before they are stored (the reading thread does
            it, each distinct id hashed once); None stores them as given.

    Returns:
        The counts of the import. Every event counted as stored was durable when counted.

    Raises:
        InvalidInput: the file cannot be read as described.
    """
    started = time.perf_counter()
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    plan = plan_columns(source_columns(path, spec.source), spec, vocabulary)
    digest = file_sha256(path)
    sink = Rejects(rejects)
    now_us = to_micros(datetime.now().astimezone())
    chunks: queue.Queue[tuple[int, pa.Table, int] | BaseException | None] = queue.Queue(2)
    stop = threading.Event()

    def offer(item: tuple[int, pa.Table, int] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def malformed(row: int | None, raw: str, why: str) -> None:
        sink.write(row, {"line": raw}, [why])

    def produce() -> None:
        try:
            columns = sorted(set(plan.values()))
            for number, (raw, position) in enumerate(
                read_chunks(path, spec.source, columns, chunk_rows, malformed)
            ):
                table = _validate(raw, plan, spec, vocabulary, now_us, sink)
                if pseudonyms is not None and pseudonyms.enabled:
                    table = _pseudonymized(table, pseudonyms, tenant)
                if not offer((number, table, position)):
                    return
            offer(None)
        except BaseException as exc:  # handed to the storing thread, which raises it
            offer(exc)

    stored = duplicates = skipped = count = 0
    reader = threading.Thread(target=produce, name="penchant-import-reader", daemon=True)
    reader.start()
    try:
        while (item := chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            number, table, position = item
            count += 1
            if table.num_rows:  # a chunk of rejected rows only has nothing to store
                key = f"{digest}:{number}:{chunk_rows}"
                ack = events.append_table(tenant, table, batch_key=key)
                skipped += ack.skipped_batch
                stored += ack.stored
                duplicates += table.num_rows - ack.stored
            if on_progress is not None:
                on_progress(position, stored + duplicates + sink.count)
    except (pa.ArrowException, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path.name}: {exc} ({stored:,} events stored before)") from exc
    finally:
        stop.set()
        reader.join()
        sink.close()
    seconds = time.perf_counter() - started
    rows = stored + duplicates + sink.count
    return ImportReport(
        path=str(path),
        rows_read=rows,
        stored=stored,
        duplicates=duplicates,
        rejected=sink.count,
        chunks=count,
        skipped_chunks=skipped,
        seconds=round(seconds, 3),
        events_per_second=round(rows / seconds, 1) if seconds > 0 else 0.0,
        rejects_path=str(rejects) if sink.count else None,
    )


def read_events(
    path: Path,
    spec: EventSpec,
    *,
    vocabulary: EventVocabulary,
    rejects: Path,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[pa.Table]:
    """Read and validate an event file without storing it (e.g. for an offline evaluation).

    The rows are checked exactly as `import_events` checks them; rejected rows go to
    `rejects` and reading goes on.

    Yields:
        The valid rows of each chunk, as `EVENT_TABLE_SCHEMA` tables.

    Raises:
        InvalidInput: the file cannot be read as described.
    """
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    plan = plan_columns(source_columns(path, spec.source), spec, vocabulary)
    sink = Rejects(rejects)
    now_us = to_micros(datetime.now().astimezone())

    def malformed(row: int | None, raw: str, why: str) -> None:
        sink.write(row, {"line": raw}, [why])

    try:
        columns = sorted(set(plan.values()))
        for raw, _ in read_chunks(path, spec.source, columns, chunk_rows, malformed):
            yield _validate(raw, plan, spec, vocabulary, now_us, sink)
    except (pa.ArrowException, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path.name}: {exc}") from exc
    finally:
        sink.close()


def _validate(
    raw: pa.Table,
    plan: Mapping[str, str],
    spec: EventSpec,
    vocabulary: EventVocabulary,
    now_us: int,
    sink: Rejects,
) -> pa.Table:
    """The valid rows of a chunk as an `EVENT_TABLE_SCHEMA` table; the others go to `sink`."""
    n = raw.num_rows
    problems = Problems()
    ids = {
        name: checked_id(chunk_column(raw, plan[name]), name, problems)
        if name in plan
        else pa.nulls(n, pa.string())
        for name in ("event_id", "user_id", "session_id", "item_id")
    }
    problems.add(
        "needs a user_id or a session_id",
        pc.invert(pc.or_(pc.is_valid(ids["user_id"]), pc.is_valid(ids["session_id"]))),
    )
    if spec.event_type is not None:
        types = pa.repeat(pa.scalar(spec.event_type, pa.string()), n)
    else:
        types = text(chunk_column(raw, plan["type"]))
        problems.add("type missing", pc.is_null(types))
        known = pa.array(sorted(vocabulary.types), pa.string())
        unknown = pc.and_(pc.is_valid(types), pc.invert(pc.is_in(types, known)))
        problems.add("unknown event type (see events.custom_types in penchant.toml)", unknown)
    values = checked_values(raw, plan, types, problems)
    if "timestamp" in plan:
        ts, found = timestamps(chunk_column(raw, plan["timestamp"]), spec.timestamp_unit)
        problems.extend(found)
    else:
        ts = pa.repeat(pa.scalar(now_us, pa.int64()), n)
    if "context" in plan:
        context = contexts(chunk_column(raw, plan["context"]), problems)
    else:
        context = pa.nulls(n, pa.string())
    columns = [*ids.values(), types, values, ts, context]
    table = pa.Table.from_arrays(columns, schema=EVENT_TABLE_SCHEMA)
    bad = problems.bad(n)
    if bad is None:
        return table
    rejected = np.flatnonzero(bad)
    for index, row in zip(rejected, raw.take(pa.array(rejected)).to_pylist(), strict=True):
        number = row.pop(ROW)
        sink.write(number, row, problems.reasons(int(index)))
    return table.filter(pa.array(~bad))


def _pseudonymized(table: pa.Table, pseudonyms: Pseudonyms, tenant: str) -> pa.Table:
    """A validated chunk with its user ids replaced by their pseudonyms."""
    at = table.schema.get_field_index("user_id")
    column = pseudonyms.column(tenant, table.column(at))
    return table.set_column(at, table.schema.field(at), column)
