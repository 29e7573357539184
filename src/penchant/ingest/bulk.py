"""Bulk import of event files: streamed in chunks, validated column-wise, stored idempotently."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from penchant.errors import InvalidInput
from penchant.ingest.readers import (
    ROW,
    Problem,
    SourceFormat,
    TimestampUnit,
    file_sha256,
    floats,
    read_chunks,
    source_columns,
    text,
    timestamps,
)
from penchant.schema import EventContext, EventVocabulary
from penchant.schema.common import to_micros
from penchant.schema.events import VALUE_REQUIRED
from penchant.store.base import EVENT_TABLE_SCHEMA, EventStore
from penchant.store.convert import context_json

#: The event fields a source column can be mapped to.
FIELDS = ("event_id", "user_id", "session_id", "item_id", "type", "value", "timestamp", "context")
DEFAULT_CHUNK_ROWS = 131_072
_CONTROL = r"[\x00-\x1f\x7f]"

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


class Rejects:
    """A rejects file (JSONL), created on the first rejected row, readable by its owner only.

    Each line is `{"row": N, "values": {column: raw value}, "reasons": [...]}`, where N is
    the 1-based number of the record in the file (the header line is not a record).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: IO[bytes] | None = None

    def write(self, row: int | None, values: Mapping[str, Any], reasons: Sequence[str]) -> None:
        """Record one rejected row: its number in the file, its raw values and why."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self._file = os.fdopen(fd, "wb")
        record = {"row": row, "values": dict(values), "reasons": list(reasons)}
        self._file.write(orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE))
        self.count += 1

    def close(self) -> None:
        """Close the file, if it was opened."""
        if self._file is not None:
            self._file.close()
            self._file = None


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
                if not offer(
                    (number, _validate(raw, plan, spec, vocabulary, now_us, sink), position)
                ):
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


class _Problems:
    """What is wrong with the rows of a chunk: reasons with a row mask, or for one row."""

    def __init__(self) -> None:
        self.items: list[tuple[str, np.ndarray[Any, Any]]] = []
        self.rows: dict[int, list[str]] = {}

    def add_row(self, index: int, reason: str) -> None:
        self.rows.setdefault(index, []).append(reason)

    def bad(self, n: int) -> np.ndarray[Any, Any] | None:
        masks = [mask for _, mask in self.items]
        if self.rows:
            one_by_one = np.zeros(n, dtype=bool)
            one_by_one[list(self.rows)] = True
            masks.append(one_by_one)
        return np.logical_or.reduce(masks) if masks else None

    def reasons(self, index: int) -> list[str]:
        return [r for r, mask in self.items if mask[index]] + self.rows.get(index, [])

    def add(self, reason: str, mask: pa.Array | np.ndarray[Any, Any] | None) -> None:
        if mask is None:
            return
        if not isinstance(mask, np.ndarray):
            mask = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
        if mask.any():
            self.items.append((reason, mask))

    def extend(self, problems: Sequence[Problem]) -> None:
        for reason, mask in problems:
            self.add(reason, mask)


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
    problems = _Problems()
    ids = {
        name: _checked_id(_column(raw, plan[name]), name, problems)
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
        types = text(_column(raw, plan["type"]))
        problems.add("type missing", pc.is_null(types))
        known = pa.array(sorted(vocabulary.types), pa.string())
        unknown = pc.and_(pc.is_valid(types), pc.invert(pc.is_in(types, known)))
        problems.add("unknown event type (see events.custom_types in penchant.toml)", unknown)
    values = _values(raw, plan, types, problems)
    if "timestamp" in plan:
        ts, found = timestamps(_column(raw, plan["timestamp"]), spec.timestamp_unit)
        problems.extend(found)
    else:
        ts = pa.repeat(pa.scalar(now_us, pa.int64()), n)
    if "context" in plan:
        context = _contexts(_column(raw, plan["context"]), problems)
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


def _column(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:  # a JSONL block in which no line has the column
        return pa.nulls(table.num_rows, pa.string())
    column = table.column(name)
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _checked_id(column: pa.Array, name: str, problems: _Problems) -> pa.Array:
    """An id column as text (empty text counts as missing), checked like `schema.Id`."""
    ids = text(column)
    if ids.null_count == len(ids):
        return ids
    lengths = pc.binary_length(ids)
    low, high = pc.min_max(lengths).values()
    if low.as_py() == 0:
        ids = pc.if_else(pc.equal(lengths, 0), pa.scalar(None, pa.string()), ids)
    if high.as_py() > 256:  # bytes; only then count characters
        problems.add(f"{name} longer than 256 characters", pc.greater(pc.utf8_length(ids), 256))
    if _may_have_control(ids):
        problems.add(f"{name} has control characters", pc.match_substring_regex(ids, _CONTROL))
    return ids


def _may_have_control(ids: pa.Array) -> bool:
    """A scan of the raw bytes; only a hit pays for the per-row pattern match."""
    buffer = ids.buffers()[2]
    if buffer is None:
        return False
    data = np.frombuffer(buffer, dtype=np.uint8)
    return bool(((data < 0x20) | (data == 0x7F)).any())


def _values(
    raw: pa.Table, plan: Mapping[str, str], types: pa.Array, problems: _Problems
) -> pa.Array:
    if "value" not in plan:
        values = pa.nulls(raw.num_rows, pa.float64())
    else:
        values, invalid = floats(_column(raw, plan["value"]))
        problems.add("value is not a number", invalid)
        problems.add("value is not finite", pc.invert(pc.is_finite(values)))
    for kind, meaning in VALUE_REQUIRED.items():
        missing = pc.and_(pc.equal(types, kind), pc.is_null(values))
        problems.add(f"a {kind} event needs value ({meaning})", missing)
    negative = pc.and_(pc.equal(types, "dwell"), pc.less(values, 0))
    problems.add("dwell value must be >= 0 seconds", negative)
    return values


def _contexts(column: pa.Array, problems: _Problems) -> pa.Array:
    """Event contexts, checked like the API checks them and stored in the same JSON form."""
    out: list[str | None] = []
    for index, value in enumerate(column.to_pylist()):
        if value is None or value == "":
            out.append(None)
            continue
        done, stored = _plain_context(value)
        if done:
            out.append(stored)
            continue
        try:
            if isinstance(value, str | bytes):
                parsed = EventContext.model_validate_json(value)
            else:  # nested in JSONL or Parquet; a struct's missing fields arrive as None
                present = {k: v for k, v in dict(value).items() if v is not None}
                parsed = EventContext.model_validate(present)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            problems.add_row(index, f"context{'.' + where if where else ''}: {first['msg']}")
            out.append(None)
            continue
        out.append(context_json(parsed))
    return pa.array(out, pa.string())


#: Context fields in the order `EventContext.model_dump` writes them.
_CONTEXT_ORDER = tuple(name for name in EventContext.model_fields if name != "attributes")
_CONTEXT_KEYS = frozenset(EventContext.model_fields)


def _plain_context(value: object) -> tuple[bool, str | None]:
    """The stored form of a context that is plainly valid, as `context_json` would write it.

    A quick path for the common case, a few times faster than the model: (False, None)
    sends anything unusual (a wrong type, a coercion, attributes, odd characters) to
    `EventContext`, which decides.
    """
    try:
        data = orjson.loads(value) if isinstance(value, str | bytes) else value
    except orjson.JSONDecodeError:
        return False, None
    if type(data) is not dict or not data.keys() <= _CONTEXT_KEYS:
        return False, None
    for name in ("request_id", "decision_id", "surface"):  # ids, like `schema.Id`
        v = data.get(name)
        # isprintable() is stricter than "no control characters": the model rules on the rest.
        if v is not None and (type(v) is not str or not 0 < len(v) <= 256 or not v.isprintable()):
            return False, None
    for name, longest in (("device", 64), ("locale", 35)):
        v = data.get(name)
        if v is not None and (type(v) is not str or len(v) > longest):
            return False, None
    v = data.get("position")
    if v is not None and (type(v) is not int or v < 0):
        return False, None
    v = data.get("propensity")
    if v is not None and (type(v) is not float or not 0.0 < v <= 1.0):
        return False, None
    if data.get("attributes"):
        return False, None
    out = {k: data[k] for k in _CONTEXT_ORDER if data.get(k) is not None}
    return True, (orjson.dumps(out).decode() if out else None)
