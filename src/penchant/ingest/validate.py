"""Validation of request bodies: event batches and catalog records, with per-row errors."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from penchant.errors import InvalidInput, PayloadTooLarge
from penchant.schema import Event, EventVocabulary

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True)
class RowError:
    """Why one row of a batch (or the body itself, when `index` is None) was rejected.

    Attributes:
        index: position of the row in the batch, or None for a problem with the whole body.
        field: where the problem is, e.g. `events[3].type` or `events[0].context.position`.
        message: what is wrong, for people.
    """

    index: int | None
    field: str
    message: str


@dataclass
class EventBatch:
    """The events of a request body that passed validation, and the rows that did not."""

    events: list[Event] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


@dataclass
class RecordBatch(Generic[M]):
    """The records (items or users) of a request body that passed, and the rows that did not."""

    records: list[M] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


class InvalidBatch(InvalidInput):
    """A batch rejected as a whole because some of its rows are invalid.

    Attributes:
        errors: every rejected row, in input order.
    """

    def __init__(self, errors: Sequence[RowError]) -> None:
        first = errors[0]
        extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first.field}: {first.message}{extra}", field=first.field)
        self.errors = list(errors)


def parse_event_batch(
    body: bytes,
    vocabulary: EventVocabulary,
    *,
    max_batch: int = 10_000,
    partial: bool = False,
) -> EventBatch:
    """Parse and validate a body `{"events": [...]}`.

    Events without an `event_id` get a random one (a UUID4 in hex) as their idempotency key.
    Clients should send their own ids: only then is a retried request stored once.

    Args:
        body: the raw request body (JSON).
        vocabulary: the event types this deployment accepts.
        max_batch: the most events one body may carry.
        partial: with False, one invalid event rejects the batch (`events` comes back empty
            and `errors` names every invalid row); with True, the valid events come back
            alongside the errors of the rejected ones.

    Returns:
        The valid events, in input order, and the errors of the invalid ones.

    Raises:
        InvalidInput: the body is not JSON, not an object, or has no non-empty `events` list.
        PayloadTooLarge: the batch holds more than `max_batch` events.
    """
    context = {"vocabulary": vocabulary}
    try:
        # The common case, a valid batch, in one pass from bytes to events.
        events = _event_body(max_batch).model_validate_json(body, context=context).events
    except ValidationError:
        # Something is wrong: parse again, slowly, to say what and where.
        rows = _rows(body, "events", max_batch)
        events, errors = _validate(rows, _adapter(Event), "events", partial, context)
    else:
        errors = []
    missing = [e for e in events if e.event_id is None]
    for event, event_id in zip(missing, _new_ids(len(missing)), strict=True):
        event.event_id = event_id
    return EventBatch(events=events, errors=errors)


def parse_records(
    body: bytes,
    model: type[M],
    key: str,
    *,
    max_batch: int = 10_000,
    partial: bool = False,
) -> RecordBatch[M]:
    """Parse and validate a batch of catalog records, `{"items": [...]}` or `{"users": [...]}`.

    Args:
        body: the raw request body (JSON).
        model: the record type, `Item` or `User`.
        key: the name of the list in the body, `items` or `users`.
        max_batch: the most records one body may carry.
        partial: as for `parse_event_batch`.

    Returns:
        The valid records, in input order, and the errors of the invalid ones.

    Raises:
        InvalidInput: the body is not JSON, not an object, or has no non-empty list at `key`.
        PayloadTooLarge: the batch holds more than `max_batch` records.
    """
    rows = _rows(body, key, max_batch)
    valid, errors = _validate(rows, _adapter(model), key, partial, None)
    return RecordBatch(records=valid, errors=errors)


def parse_record(body: bytes, model: type[M], record_id: str) -> M:
    """Parse one catalog record whose id comes from the URL path.

    Args:
        body: the raw request body, a JSON object; its `id` may be left out.
        model: the record type, `Item` or `User`.
        record_id: the id from the path; the body's `id`, if given, must be the same.

    Returns:
        The validated record.

    Raises:
        InvalidInput: the body is not a JSON object, its id differs from the path, or a field
            is invalid (an `InvalidBatch` naming every invalid field).
    """
    data = _load(body, "body")
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object", field="body")
    if data.setdefault("id", record_id) != record_id:
        raise InvalidInput("the id in the body differs from the id in the path", field="id")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidBatch(_errors(exc, "", batch=False)) from None


# -- helpers -------------------------------------------------------------------------------
class _EventBody(BaseModel):
    """A whole valid body; `_event_body` adds the batch size limits."""

    model_config = ConfigDict(extra="forbid")

    events: list[Event]


@functools.cache
def _event_body(max_batch: int) -> type[_EventBody]:
    limits = Field(min_length=1, max_length=max_batch)
    return create_model("EventBody", __base__=_EventBody, events=(list[Event], limits))


@functools.cache
def _adapter(model: type[M]) -> TypeAdapter[list[M]]:
    # One validator call for the whole list: far cheaper than one call per row.
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _load(body: bytes, field: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", field=field) from None


def _rows(body: bytes, key: str, max_batch: int) -> list[Any]:
    data = _load(body, key)
    if not isinstance(data, dict):
        raise InvalidInput(f'the body must be a JSON object {{"{key}": [...]}}', field=key)
    rows = data.get(key)
    if not isinstance(rows, list) or not rows:
        raise InvalidInput(f"{key} must be a non-empty list", field=key)
    unknown = sorted(set(data) - {key})
    if unknown:
        raise InvalidInput(f"unknown top-level field {unknown[0]!r}", field=unknown[0])
    if len(rows) > max_batch:
        raise PayloadTooLarge(
            f"{len(rows)} {key} in one batch; the limit is {max_batch}", field=key
        )
    return rows


def _validate(
    rows: list[Any],
    adapter: TypeAdapter[list[T]],
    key: str,
    partial: bool,
    context: dict[str, Any] | None,
) -> tuple[list[T], list[RowError]]:
    try:
        return adapter.validate_python(rows, context=context), []
    except ValidationError as exc:
        errors = _errors(exc, key, batch=True)
    if not partial:
        return [], errors
    # Rows validate independently, so the rows without errors pass on their own.
    bad = {e.index for e in errors}
    good = [row for i, row in enumerate(rows) if i not in bad]
    return (adapter.validate_python(good, context=context) if good else []), errors


def _errors(exc: ValidationError, key: str, batch: bool) -> list[RowError]:
    """Row errors from a pydantic error; in a batch the first location part is the row."""
    out: list[RowError] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = list(err["loc"])
        first = loc[0] if loc else None
        index = first if batch and isinstance(first, int) else None
        path = f"{key}[{index}]" if index is not None else key
        for part in loc[1:] if index is not None else loc:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        message = str(err["msg"]).removeprefix("Value error, ")
        out.append(RowError(index=index, field=path.lstrip(".") or "body", message=message))
    return out


def _new_ids(n: int) -> list[str]:
    """`n` random UUID4s in hex; one system call for all, since uuid.uuid4() is slow per id."""
    if n == 0:
        return []
    raw = bytearray(os.urandom(16 * n))
    ids = []
    for start in range(0, 16 * n, 16):
        raw[start + 6] = (raw[start + 6] & 0x0F) | 0x40  # version 4
        raw[start + 8] = (raw[start + 8] & 0x3F) | 0x80  # RFC 4122 variant
        ids.append(raw[start : start + 16].hex())
    return ids
