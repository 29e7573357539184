"""Conversions between event records and the columnar batch every backend stores."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from penchant.schema import Event, EventContext
from penchant.store.base import EVENT_TABLE_SCHEMA


def context_json(context: EventContext | None) -> str | None:
    """The stored form of an event context: compact JSON without unset or empty fields."""
    if context is None:
        return None
    text = context.model_dump_json(exclude_defaults=True)
    return None if text == "{}" else text


def events_to_table(events: Sequence[Event]) -> pa.Table:
    """A batch of validated events as a table with `EVENT_TABLE_SCHEMA`."""
    return pa.table(
        {
            "event_id": [e.event_id for e in events],
            "user_id": [e.user_id for e in events],
            "session_id": [e.session_id for e in events],
            "item_id": [e.item_id for e in events],
            "type": [e.type for e in events],
            "value": [e.value for e in events],
            # pyarrow converts aware datetimes to UTC microseconds in C.
            "ts": pa.array([e.timestamp for e in events], pa.timestamp("us", tz="UTC")).cast(
                pa.int64()
            ),
            "context": [context_json(e.context) for e in events],
        },
        schema=EVENT_TABLE_SCHEMA,
    )
