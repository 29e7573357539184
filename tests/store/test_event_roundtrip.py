"""Property: whatever valid events go in come back out unchanged, in order, once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penchant.schema import Event
from penchant.store import Store, open_store
from penchant.types import BUILTIN_EVENT_TYPES

ids = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
events = st.builds(
    lambda eid, user, session, item, kind, value, ts, pos: Event.model_validate(
        {
            "event_id": eid,
            "user_id": user,
            "session_id": session if user is None else None,
            "item_id": item,
            "type": kind,
            "value": value if kind not in ("rating", "dwell") else abs(value or 1.0),
            "timestamp": ts,
            "context": None if pos is None else {"position": pos, "request_id": "r"},
        }
    ),
    ids,
    st.one_of(st.none(), ids),
    ids,
    st.one_of(st.none(), ids),
    st.sampled_from(BUILTIN_EVENT_TYPES),
    st.one_of(st.none(), st.floats(-1e9, 1e9, allow_nan=False)),
    st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.one_of(st.none(), st.integers(0, 1000)),
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("roundtrip") / "p.db"
    store = open_store(f"sqlite:///{path}", synchronous="OFF")
    yield store
    store.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(events, min_size=1, max_size=20))
def test_events_round_trip(store: Store, batch: list[Event]) -> None:
    tenant = uuid.uuid4().hex
    ack = store.events.append(tenant, batch)
    firsts: dict[str, Event] = {}
    for e in batch:
        firsts.setdefault(str(e.event_id), e)
    assert ack.stored == len(firsts)
    got = [e for b in store.events.scan(tenant) for e in b]
    assert [e.model_dump() for e in got] == [e.model_dump() for e in firsts.values()]
