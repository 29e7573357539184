"""`StoreContract`: the behaviour every persistent store backend must show.

Subclass it in a test module and provide a `store_url` fixture; every test below then runs
against that backend.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from penchant.schema import ConsentState, Event, Item, User
from penchant.store import EventFilter, Store, events_to_table, open_store
from penchant.store.base import EVENT_TABLE_SCHEMA, ApiKeyRecord
from penchant.types import Purpose

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def ev(
    n: int, user: str | None = "u1", item: str | None = "i1", kind: str = "click", **extra: object
) -> Event:
    """An event with id `e{n}` at `T0 + n` seconds."""
    return Event.model_validate(
        {
            "event_id": f"e{n}",
            "user_id": user,
            "item_id": item,
            "type": kind,
            "timestamp": T0 + timedelta(seconds=n),
            **extra,
        }
    )


class StoreContract:
    """Tests every store backend must pass. Needs a `store_url` fixture."""

    @pytest.fixture
    def store(self, store_url: str) -> Iterator[Store]:
        store = open_store(store_url)
        yield store
        store.close()

    # -- events ---------------------------------------------------------------------------
    def test_append_then_scan_round_trips_every_field(self, store: Store) -> None:
        sent = [
            ev(
                1,
                value=None,
                context={
                    "request_id": "r1",
                    "surface": "home",
                    "position": 0,
                    "propensity": 0.5,
                    "attributes": {"ab": "x"},
                },
            ),
            Event.model_validate(
                {
                    "event_id": "e2",
                    "session_id": "s9",
                    "item_id": "i2",
                    "type": "rating",
                    "value": 4.5,
                    "timestamp": T0 + timedelta(seconds=2),
                }
            ),
            ev(3, item=None, kind="view"),
        ]
        ack = store.events.append("t", sent)
        assert (ack.stored, ack.duplicates) == (3, ())
        got = [e for batch in store.events.scan("t") for e in batch]
        assert [e.model_dump() for e in got] == [e.model_dump() for e in sent]

    def test_a_batch_without_ids_round_trips_every_field(self, store: Store) -> None:
        sent = [
            Event.model_validate(
                {
                    "user_id": 'u,"1"\u00e9',
                    "item_id": "i 1",
                    "type": "rating",
                    "value": 0.1,
                    "timestamp": T0,
                    "context": {
                        "surface": 'a,"b"',
                        "locale": "fr-FR",
                        "attributes": {"q": "line\nbreak"},
                    },
                }
            ),
            Event.model_validate({"session_id": "s", "type": "view", "timestamp": T0}),
        ]
        table = events_to_table(sent)
        assert store.events.append_table("t", table, batch_key="k").stored == 2
        got = [e for batch in store.events.scan("t") for e in batch]
        assert [e.model_dump() for e in got] == [e.model_dump() for e in sent]

    def test_a_batch_without_ids_keeps_its_order_and_values(self, store: Store) -> None:
        sent = [
            Event.model_validate(
                {
                    "user_id": f"u{n % 7}",
                    "item_id": f"i{n}",
                    "type": "rating",
                    "value": n / 3 if n % 4 else None,
                    "timestamp": T0 + timedelta(seconds=n),
                }
                if n % 4
                else {
                    "user_id": f"u{n % 7}",
                    "item_id": f"i{n}",
                    "type": "click",
                    "timestamp": T0 + timedelta(seconds=n),
                }
            )
            for n in range(300)
        ]
        assert store.events.append_table("t", events_to_table(sent)).stored == 300
        got = [e for batch in store.events.scan("t", batch_size=128) for e in batch]
        assert [e.model_dump() for e in got] == [e.model_dump() for e in sent]

    def test_same_event_id_is_stored_once_and_reported(self, store: Store) -> None:
        assert store.events.append("t", [ev(1), ev(2)]).stored == 2
        ack = store.events.append("t", [ev(2), ev(3), ev(3)])
        assert ack.stored == 1
        assert sorted(ack.duplicates) == ["e2", "e3"]
        assert store.events.count("t") == 3

    def test_batch_key_makes_a_whole_batch_idempotent(self, store: Store) -> None:
        table = events_to_table([ev(1).model_copy(update={"event_id": None})] * 3)
        assert store.events.append_table("t", table, batch_key="file:0").stored == 3
        again = store.events.append_table("t", table, batch_key="file:0")
        assert again.skipped_batch and again.stored == 0
        assert store.events.count("t") == 3

    def test_a_failed_batch_stores_nothing(self, store: Store) -> None:
        store.events.append("t", [ev(1)])
        bad = events_to_table([ev(2), ev(3)]).set_column(
            6, "ts", pa.array([1, None], type=pa.int64())
        )
        with pytest.raises(Exception):  # noqa: B017 - any backend error will do
            store.events.append_table("t", bad)
        assert store.events.count("t") == 1
        assert store.events.append("t", [ev(2)]).stored == 1

    def test_tenants_never_see_each_other(self, store: Store) -> None:
        store.events.append("a", [ev(1, user="shared")])
        store.catalog.upsert_items("a", [Item(id="i1", title="A")])
        store.catalog.upsert_users("a", [User(id="shared")])
        assert store.events.count("b") == 0
        assert list(store.events.scan("b")) == []
        assert list(store.events.scan("b", EventFilter(user_id="shared"))) == []
        assert store.catalog.get_item("b", "i1") is None
        assert store.catalog.get_user("b", "shared") is None
        assert store.events.delete_user("b", "shared") == 0
        # The same event id in another tenant is a different event.
        assert store.events.append("b", [ev(1, user="shared")]).stored == 1
        assert store.events.count("a") == 1

    def test_scan_filters(self, store: Store) -> None:
        store.events.append(
            "t",
            [
                ev(1, user="u1", item="i1"),
                ev(2, user="u2", item="i1"),
                ev(3, user="u1", item="i2", kind="purchase"),
                Event(
                    event_id="e4",
                    session_id="s1",
                    item_id="i2",
                    type="view",
                    timestamp=T0 + timedelta(seconds=4),
                ),
            ],
        )

        def ids(where: EventFilter) -> list[str | None]:
            return [e.event_id for b in store.events.scan("t", where) for e in b]

        assert ids(EventFilter(user_id="u1")) == ["e1", "e3"]
        assert ids(EventFilter(session_id="s1")) == ["e4"]
        assert ids(EventFilter(item_id="i2")) == ["e3", "e4"]
        assert ids(EventFilter(types=("purchase", "view"))) == ["e3", "e4"]
        assert ids(
            EventFilter(since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=4))
        ) == ["e2", "e3"]
        assert ids(EventFilter(user_id="nobody")) == []

    def test_scan_streams_in_batches_in_stored_order(self, store: Store) -> None:
        store.events.append("t", [ev(n, user=f"u{n % 7}") for n in range(1, 26)])
        batches = list(store.events.scan("t", batch_size=10))
        assert [len(b) for b in batches] == [10, 10, 5]
        assert [e.event_id for b in batches for e in b] == [f"e{n}" for n in range(1, 26)]

    def test_scan_tables_hold_what_scan_returns(self, store: Store) -> None:
        sent = [
            ev(n, user=f"u{n % 3}", item=f"i{n % 4}", value=float(n), context={"position": n})
            for n in range(1, 8)
        ]
        sent += [
            ev(8, item=None, kind="view", context={"request_id": "r1", "device": "mobile"}),
            Event(event_id="e9", session_id="s1", item_id="i9", type="view", timestamp=T0),
        ]
        store.events.append("t", sent)
        for where in (None, EventFilter(user_id="u1"), EventFilter(types=("view",))):
            records = [e for batch in store.events.scan("t", where) for e in batch]
            tables = list(store.events.scan_tables("t", where, batch_size=3))
            assert all(t.schema.equals(EVENT_TABLE_SCHEMA) for t in tables)
            assert max(t.num_rows for t in tables) <= 3
            got = pa.concat_tables(tables)
            assert got.to_pylist() == events_to_table(records).to_pylist(), where
        assert list(store.events.scan_tables("t", EventFilter(user_id="nobody"))) == []
        assert list(store.events.scan_tables("no-such-tenant")) == []

    def test_interactions_are_columnar_and_complete(self, store: Store) -> None:
        store.events.append(
            "t",
            [
                ev(n, user=f"u{n % 3}", item=f"i{n % 4}", kind="rating", value=float(n % 5 + 1))
                for n in range(1, 11)
            ],
        )
        store.events.append(
            "t", [Event(event_id="s", session_id="s1", item_id="i9", type="view", timestamp=T0)]
        )
        table = pa.concat_tables(
            [t.cast(t.schema) for t in store.events.interactions("t", batch_size=4)],
            promote_options="permissive",
        )
        assert table.num_rows == 11
        assert set(table.column_names) >= {"user_id", "item_id", "type", "value", "timestamp"}
        rows = table.to_pylist()
        assert rows[0]["user_id"] == "u1" and rows[0]["item_id"] == "i1"
        assert rows[0]["value"] == 2.0 and rows[0]["type"] == "rating"
        assert rows[0]["timestamp"] == T0 + timedelta(seconds=1)
        assert rows[-1]["user_id"] is None and rows[-1]["session_id"] == "s1"
        assert rows[-1]["value"] is None
        recent = pa.concat_tables(
            list(store.events.interactions("t", since=T0 + timedelta(seconds=9)))
        )
        assert recent.num_rows == 2

    def test_delete_user_removes_only_that_user(self, store: Store) -> None:
        store.events.append("t", [ev(1, user="gone"), ev(2, user="kept"), ev(3, user="gone")])
        assert store.events.delete_user("t", "gone") == 2
        assert [e.user_id for b in store.events.scan("t") for e in b] == ["kept"]
        assert list(store.events.scan("t", EventFilter(user_id="gone"))) == []
        # A later event for the same id is a fresh start, not a resurrection of old rows.
        store.events.append("t", [ev(4, user="gone")])
        assert [
            e.event_id for b in store.events.scan("t", EventFilter(user_id="gone")) for e in b
        ] == ["e4"]

    def test_delete_before_removes_only_that_tenants_expired_rows_of_that_type(
        self, store: Store
    ) -> None:
        # Interleaved types and an unexpired click amid expired ones: chunks must skip them.
        sent = [ev(n, kind="click" if n % 2 else "view") for n in range(1, 21)]
        sent.append(ev(0, kind="click").model_copy(update={"event_id": "late"}))
        sent.append(ev(99, kind="click").model_copy(update={"timestamp": T0}))
        store.events.append("t", sent)
        store.events.append("other", [ev(n) for n in range(1, 6)])
        cut = T0 + timedelta(seconds=11)
        for batch_size in (3, 5):  # a partial last chunk, and chunks that end exactly
            deleted = store.events.delete_before("t", "click", cut, batch_size=batch_size)
            assert deleted == (7 if batch_size == 3 else 0)
        left = [(e.type, e.timestamp) for b in store.events.scan("t") for e in b]
        assert sorted(t for t, _ in left) == ["click"] * 5 + ["view"] * 10
        assert all(ts >= cut for t, ts in left if t == "click")
        assert store.events.count("other") == 5
        assert store.events.delete_before("t", "view", cut, batch_size=1) == 5

    def test_delete_before_an_unknown_type_or_tenant_deletes_and_records_nothing(
        self, store: Store
    ) -> None:
        store.events.append("t", [ev(1, kind="view"), ev(2, kind="click")])
        later = T0 + timedelta(days=1)
        assert store.events.delete_before("t", "never", later) == 0
        assert store.events.delete_before("nobody", "click", later) == 0
        assert store.events.event_types("t") == ["click", "view"]
        assert store.events.event_types("nobody") == []
        assert store.events.count("t") == 2

    def test_count_with_a_filter_counts_what_scan_returns(self, store: Store) -> None:
        store.events.append("t", [ev(n, kind="click" if n < 4 else "view") for n in range(1, 8)])
        where = EventFilter(types=("click",), until=T0 + timedelta(seconds=3))
        assert store.events.count("t", where) == 2
        assert store.events.count("t", EventFilter(types=("never",))) == 0
        assert store.events.count("t", EventFilter(user_id="nobody")) == 0
        assert store.events.count("t") == 7

    def test_concurrent_writers_store_each_event_once(self, store: Store) -> None:
        batch = [ev(n) for n in range(200)]
        acks = []

        def write() -> None:
            acks.append(store.events.append("t", batch))

        threads = [threading.Thread(target=write) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(a.stored for a in acks) == 200
        assert sum(len(a.duplicates) for a in acks) == 600
        assert store.events.count("t") == 200

    def test_data_survives_reopening(self, store: Store, store_url: str) -> None:
        store.events.append("t", [ev(1)])
        store.catalog.upsert_items("t", [Item(id="i1")])
        store.close()
        again = open_store(store_url)
        try:
            assert again.events.count("t") == 1
            assert again.catalog.get_item("t", "i1") is not None
        finally:
            again.close()

    # -- catalog --------------------------------------------------------------------------
    def test_items_round_trip_and_upsert_replaces(self, store: Store) -> None:
        item = Item(
            id="i1",
            title="T",
            text="body",
            categories=["news", "sport"],
            tags=["x"],
            provider="p1",
            attributes={"price": 9.5, "lang": "en", "n": [1, 2]},
            published_at=T0,
            expires_at=T0 + timedelta(days=3),
            available=False,
        )
        assert store.catalog.upsert_items("t", [item]) == 1
        assert store.catalog.get_item("t", "i1") == item
        store.catalog.upsert_items("t", [Item(id="i1", title="new"), Item(id="i1", title="last")])
        got = store.catalog.get_item("t", "i1")
        assert got is not None and got.title == "last" and got.categories == []
        assert store.catalog.delete_item("t", "i1") is True
        assert store.catalog.delete_item("t", "i1") is False
        assert store.catalog.get_item("t", "i1") is None

    def test_users_round_trip_with_consent(self, store: Store) -> None:
        user = User(
            id="u1",
            attributes={"country": "NL"},
            consent={
                Purpose.PERSONALIZATION: ConsentState(granted=True, at=T0),
                Purpose.ADVERTISING: ConsentState(
                    granted=False, at=T0, source="banner", version="2"
                ),
            },
        )
        store.catalog.upsert_users("t", [user])
        assert store.catalog.get_user("t", "u1") == user
        assert store.catalog.delete_user("t", "u1") is True
        assert store.catalog.get_user("t", "u1") is None

    def test_catalog_scans_stream_in_id_order(self, store: Store) -> None:
        store.catalog.upsert_items("t", [Item(id=f"i{n:03d}") for n in range(25)])
        store.catalog.upsert_users("t", [User(id=f"u{n:03d}") for n in range(12)])
        batches = list(store.catalog.scan_items("t", batch_size=10))
        assert [len(b) for b in batches] == [10, 10, 5]
        assert [i.id for b in batches for i in b] == [f"i{n:03d}" for n in range(25)]
        assert sum(len(b) for b in store.catalog.scan_users("t", batch_size=5)) == 12

    # -- keys and quality -----------------------------------------------------------------
    def test_keys_are_listed_per_tenant_and_revoked(self, store: Store) -> None:
        store.keys.put_key(ApiKeyRecord("k1", "a", "h1", ("admin",), name="one"))
        store.keys.put_key(ApiKeyRecord("k2", "b", "h2", ("events:write",)))
        got = store.keys.get_key("k1")
        assert got is not None and got.secret_hash == "h1" and got.scopes == ("admin",)
        assert [k.key_id for k in store.keys.list_keys("b")] == ["k2"]
        assert store.keys.revoke_key("k1") is True
        assert store.keys.revoke_key("k1") is False
        revoked = store.keys.get_key("k1")
        assert revoked is not None and revoked.revoked_at is not None
        assert store.keys.get_key("nope") is None

    def test_quality_counts_events_for_unknown_items(self, store: Store) -> None:
        store.events.append(
            "t",
            [ev(1, item="i1"), ev(2, item="i2"), ev(3, item="i2"), ev(4, item=None, kind="view")],
        )
        q = store.quality("t")
        assert (q.events, q.users, q.items) == (4, 1, 2)
        assert (q.events_unknown_item, q.unknown_items, q.events_without_item) == (3, 2, 1)
        assert q.by_type == {"click": 3, "view": 1}
        store.catalog.upsert_items("t", [Item(id="i2")])
        q = store.quality("t")
        assert (q.events_unknown_item, q.unknown_items, q.catalog_items) == (1, 1, 1)
        assert q.first_ts == T0 + timedelta(seconds=1)
