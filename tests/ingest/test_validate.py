"""Batch validation: top-level checks, per-row errors with their fields, partial batches."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from penchant.errors import InvalidInput, PayloadTooLarge
from penchant.ingest.validate import (
    InvalidBatch,
    RowError,
    parse_event_batch,
    parse_record,
    parse_records,
)
from penchant.schema import EventVocabulary, Item, User

VOCABULARY = EventVocabulary(["bookmark"])


def body(rows: list[Any], key: str = "events") -> bytes:
    return orjson.dumps({key: rows})


def good(n: int) -> dict[str, Any]:
    return {"event_id": f"e{n}", "user_id": "u1", "type": "click", "item_id": f"i{n}"}


def test_valid_batch_keeps_input_order() -> None:
    batch = parse_event_batch(body([good(3), good(1), good(2)]), VOCABULARY)
    assert [e.event_id for e in batch.events] == ["e3", "e1", "e2"]
    assert batch.errors == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"events": []}', "non-empty list"),
        (b'{"events": "click"}', "non-empty list"),
        (b"{}", "non-empty list"),
        (b'{"events": [{}], "extra": 1}', "unknown top-level field"),
    ],
)
def test_top_level_problems_raise(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        parse_event_batch(raw, VOCABULARY)
    assert caught.value.field in ("events", "extra")


def test_over_max_batch_is_too_large() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        parse_event_batch(body([good(i) for i in range(4)]), VOCABULARY, max_batch=3)
    assert caught.value.field == "events"


def test_errors_name_index_and_field() -> None:
    rows = [
        good(0),
        good(1) | {"type": "teleport"},
        good(2) | {"context": {"position": -1}},
        {"type": "click"},
        "not an object",
        good(5) | {"type": "rating"},
        good(6) | {"colour": "red"},
    ]
    batch = parse_event_batch(body(rows), VOCABULARY)
    assert batch.events == []
    assert [(e.index, e.field) for e in batch.errors] == [
        (1, "events[1].type"),
        (2, "events[2].context.position"),
        (3, "events[3]"),
        (4, "events[4]"),
        (5, "events[5]"),
        (6, "events[6].colour"),
    ]
    messages = [e.message for e in batch.errors]
    assert messages[0].startswith("unknown event type 'teleport'")
    assert messages[3].startswith("Input should be a valid dictionary")
    assert messages[4] == "a rating event needs value (the rating)"


def test_partial_returns_the_valid_rows() -> None:
    rows = [good(0), good(1) | {"type": "nope"}, good(2) | {"type": "bookmark"}]
    batch = parse_event_batch(body(rows), VOCABULARY, partial=True)
    assert [e.event_id for e in batch.events] == ["e0", "e2"]
    assert batch.errors == [RowError(1, "events[1].type", batch.errors[0].message)]


def test_missing_event_ids_are_random_uuid4() -> None:
    rows = [{"user_id": "u", "type": "view"} for _ in range(50)] + [good(1)]
    batch = parse_event_batch(body(rows), VOCABULARY)
    ids = [e.event_id for e in batch.events]
    assert ids[-1] == "e1"
    assert len(set(ids)) == 51
    for event_id in ids[:-1]:
        assert event_id is not None
        parsed = uuid.UUID(hex=event_id)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_a_thousand_events_validate_in_one_call() -> None:
    rows = [good(i) | {"context": {"position": i % 10, "request_id": "r"}} for i in range(1000)]
    batch = parse_event_batch(body(rows), VOCABULARY)
    assert len(batch.events) == 1000
    assert batch.events[999].context is not None
    assert batch.events[999].context.position == 9


def test_records_batch() -> None:
    rows = [{"id": "a", "title": "A"}, {"id": "b", "available": "maybe"}]
    batch = parse_records(body(rows, "items"), Item, "items")
    assert batch.records == []
    assert [(e.index, e.field) for e in batch.errors] == [(1, "items[1].available")]
    partial = parse_records(body(rows, "items"), Item, "items", partial=True)
    assert [r.id for r in partial.records] == ["a"]
    with pytest.raises(InvalidInput, match="non-empty list"):
        parse_records(body(rows, "items"), User, "users")


def test_single_record_takes_the_path_id() -> None:
    assert parse_record(b'{"title": "A"}', Item, "a1") == Item(id="a1", title="A")
    assert parse_record(b'{"id": "a1"}', Item, "a1").id == "a1"
    with pytest.raises(InvalidInput, match="differs") as mismatch:
        parse_record(b'{"id": "b2"}', Item, "a1")
    assert mismatch.value.field == "id"
    with pytest.raises(InvalidBatch) as invalid:
        parse_record(b'{"consent": {"spying": {"granted": true}}}', User, "u1")
    assert invalid.value.errors[0].field == "consent.spying.[key]"
    with pytest.raises(InvalidInput, match="JSON object"):
        parse_record(b"[]", Item, "a1")
