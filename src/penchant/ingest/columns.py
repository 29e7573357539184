"""Column parsing: raw Arrow columns become checked event columns, with the rows at fault."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from penchant.schema import EventContext
from penchant.schema.common import to_micros
from penchant.schema.events import VALUE_REQUIRED
from penchant.store.convert import context_json

#: How timestamps are read; `auto` takes numbers as unix seconds and text as ISO-8601.
TimestampUnit = Literal["auto", "s", "ms", "us", "iso"]

#: Why some rows are bad: a reason and a boolean mask over the rows (Arrow or numpy).
Problem = tuple[str, Any]

_FACTOR = {"auto": 1_000_000, "s": 1_000_000, "ms": 1_000, "us": 1}
#: Accepted event times: from 1970-01-01 up to, not including, 2200-01-01 (UTC).
_MIN_US, _MAX_US = 0, 7_258_118_400_000_000
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|infinity|nan)$"
_CONTROL = r"[\x00-\x1f\x7f]"


def text(column: pa.Array) -> pa.Array:
    """A column as UTF-8 text (numbers become their decimal form)."""
    if pa.types.is_string(column.type):
        return column
    return pc.cast(column, pa.string())


def floats(column: pa.Array) -> tuple[pa.Array, np.ndarray[Any, Any] | None]:
    """A column as float64, and the mask of present values that are not numbers."""
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        return pc.cast(column, pa.float64()), None
    values = text(column)
    try:
        return pc.cast(values, pa.float64()), None
    except pa.ArrowInvalid:
        pass
    trimmed = pc.utf8_trim_whitespace(values)
    ok = pc.fill_null(pc.match_substring_regex(trimmed, _NUMBER, ignore_case=True), False)
    try:
        parsed = pc.cast(pc.if_else(ok, trimmed, pa.scalar(None, pa.string())), pa.float64())
    except pa.ArrowInvalid:  # text the pattern lets through but Arrow does not: go row by row
        parsed = pa.array([_py_float(v) for v in trimmed.to_pylist()], pa.float64())
        ok = pc.is_valid(parsed)
    invalid = pc.and_(pc.is_valid(values), pc.invert(ok))
    return parsed, pc.fill_null(invalid, False).to_numpy(zero_copy_only=False)


def _py_float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def timestamps(column: pa.Array, unit: TimestampUnit) -> tuple[pa.Array, list[Problem]]:
    """A timestamp column as int64 microseconds since the epoch (UTC).

    Returns:
        The times, null where a row has none or a bad one, and (reason, row mask) pairs.
    """
    present = pc.is_valid(column)
    problems: list[Problem] = [("timestamp missing", pc.invert(present))]
    kind = column.type
    parsed: pa.Array | None = None
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        parsed = pc.cast(pc.cast(column, pa.timestamp("us")), pa.int64())
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        parsed = _scaled(pc.cast(column, pa.float64()), unit)
    else:
        values = text(column)
        if unit != "iso":
            try:
                parsed = _scaled(pc.cast(values, pa.float64()), unit)
            except pa.ArrowInvalid:
                parsed = None
        if parsed is None and unit in ("iso", "auto"):
            parsed = _iso(values)
        if parsed is None:
            parsed = pa.array([_py_micros(v, unit) for v in values.to_pylist()], pa.int64())
    problems.append(
        (
            f"timestamp not parseable as {'unix seconds or ISO-8601' if unit == 'auto' else unit}",
            pc.and_(present, pc.is_null(parsed)),
        )
    )
    in_range = pc.and_(pc.greater_equal(parsed, _MIN_US), pc.less(parsed, _MAX_US))
    problems.append(
        (
            "timestamp outside 1970..2200 (check --timestamp-unit)",
            pc.and_(pc.is_valid(parsed), pc.invert(in_range)),
        )
    )
    return pc.if_else(in_range, parsed, pa.scalar(None, pa.int64())), problems


def _scaled(seconds_like: pa.Array, unit: TimestampUnit) -> pa.Array:
    """Numbers in `unit` as int64 microseconds; values that cannot be times become null."""
    scaled = pc.multiply(seconds_like, float(_FACTOR.get(unit, 1_000_000)))
    ok = pc.and_(pc.greater_equal(scaled, -9e18), pc.less_equal(scaled, 9e18))  # NaN: False
    return pc.cast(pc.round(pc.if_else(ok, scaled, pa.scalar(None, pa.float64()))), pa.int64())


def _iso(values: pa.Array) -> pa.Array | None:
    """ISO-8601 text, with an offset or naive (taken as UTC), vectorized; None if mixed."""
    for kind in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        try:
            return pc.cast(pc.cast(values, kind), pa.int64())
        except pa.ArrowInvalid:
            continue
    return None


def _py_micros(value: str | None, unit: TimestampUnit) -> int | None:
    """One timestamp, for chunks where the vectorized parse failed on some row."""
    if value is None:
        return None
    value = value.strip()
    if unit != "iso":
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None:
            scaled = number * _FACTOR.get(unit, 1_000_000)
            return round(scaled) if math.isfinite(scaled) and abs(scaled) < 9e18 else None
        if unit != "auto":
            return None
    try:
        return to_micros(datetime.fromisoformat(value))
    except ValueError:
        return None


class Problems:
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


def chunk_column(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:  # a JSONL block in which no line has the column
        return pa.nulls(table.num_rows, pa.string())
    column = table.column(name)
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def checked_id(column: pa.Array, name: str, problems: Problems) -> pa.Array:
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


def checked_values(
    raw: pa.Table, plan: Mapping[str, str], types: pa.Array, problems: Problems
) -> pa.Array:
    if "value" not in plan:
        values = pa.nulls(raw.num_rows, pa.float64())
    else:
        values, invalid = floats(chunk_column(raw, plan["value"]))
        problems.add("value is not a number", invalid)
        problems.add("value is not finite", pc.invert(pc.is_finite(values)))
    for kind, meaning in VALUE_REQUIRED.items():
        missing = pc.and_(pc.equal(types, kind), pc.is_null(values))
        problems.add(f"a {kind} event needs value ({meaning})", missing)
    negative = pc.and_(pc.equal(types, "dwell"), pc.less(values, 0))
    problems.add("dwell value must be >= 0 seconds", negative)
    return values


def contexts(column: pa.Array, problems: Problems) -> pa.Array:
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
