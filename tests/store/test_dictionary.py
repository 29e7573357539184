"""The dictionary holds each key once, under its own kind, and forgets an erased user."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from penchant.schema import Event
from penchant.store import Store, open_store
from penchant.store.sql.dictionary import _analyze_unless_locked
from penchant.store.sql.engine import write_tx
from penchant.store.sql.tables import KIND_ITEM, KIND_TYPE, KIND_USER, dictionary, tenants


def _entries(url: str) -> set[tuple[int, str]]:
    store = open_store(url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(select(dictionary.c.kind, dictionary.c.key)).all()
        return {(int(kind), str(key)) for kind, key in rows}
    finally:
        store.close()


def test_keys_are_stored_under_their_own_kind_only(store_url: str) -> None:
    store = open_store(store_url)
    store.events.append("t", [Event(user_id="alice", item_id="book-1", type="view")])
    store.close()
    assert _entries(store_url) == {
        (KIND_USER, "alice"),
        (KIND_ITEM, "book-1"),
        (KIND_TYPE, "view"),
    }


def test_an_erased_user_id_is_gone_from_the_dictionary(store_url: str) -> None:
    store = open_store(store_url)
    store.events.append(
        "t",
        [
            Event(user_id="alice", item_id="book-1", type="view"),
            Event(user_id="bob", item_id="book-2", type="click"),
        ],
    )
    erased = store.privacy.erase_user(
        "t", "alice", job_id="j1", actor="test", rebuild_due_at=datetime.now(UTC)
    )
    assert erased.counts["events"] == 1
    store.close()
    entries = _entries(store_url)
    assert all(key != "alice" for _, key in entries)
    assert (KIND_USER, "bob") in entries


def test_a_few_keys_against_a_large_cache_read_the_same_codes(store_url: str) -> None:
    """Past 64 cached entries per key, encoding asks the database: same codes, new keys made."""
    store = open_store(store_url)
    try:
        many = [Event(user_id=f"u{i}", item_id=f"i{i}", type="view") for i in range(700)]
        store.events.append("t", many)  # the cache now holds 700 users and 700 items
        store.events.append(
            "t",
            [
                Event(user_id="u5", item_id="i7", type="view"),
                Event(user_id="newcomer", item_id="i7", type="click"),
            ],
        )
        with store.engine.connect() as conn:
            rows = conn.execute(select(dictionary.c.kind, dictionary.c.key, dictionary.c.ix)).all()
        ix = {(int(kind), str(key)): int(code) for kind, key, code in rows}
        assert (KIND_USER, "newcomer") in ix and len(ix) == 700 + 700 + 2 + 1
        stored = [
            (e.user_id, e.item_id, e.type)
            for batch in store.events.scan("t")
            for e in batch
            if e.user_id in {"u5", "newcomer"}
        ]
        assert sorted(stored) == [
            ("newcomer", "i7", "click"),
            ("u5", "i5", "view"),
            ("u5", "i7", "view"),
        ]
    finally:
        store.close()


def test_another_process_encodes_known_and_new_keys_alike(store_url: str) -> None:
    """A writer whose cache is empty (another process) reads the codes of keys already
    stored, over several chunks of the lookup, and makes codes for the new keys only."""
    first = open_store(store_url)
    first.events.append(
        "t", [Event(user_id=f"u{i}", item_id="i0", type="view") for i in range(1200)]
    )
    first.close()
    before = _codes(store_url)
    second = open_store(store_url)  # a fresh cache, as in another worker's process
    try:
        mixed = [Event(user_id=f"u{i}", item_id="i1", type="click") for i in range(600, 1800)]
        second.events.append("t", mixed)
        stored = {(e.user_id, e.type) for batch in second.events.scan("t") for e in batch}
    finally:
        second.close()
    after = _codes(store_url)
    assert {key: after[key] for key in before} == before  # known keys keep their codes
    users = {key for kind, key in after if kind == KIND_USER}
    assert users == {f"u{i}" for i in range(1800)}
    assert len(after) == 1800 + 2 + 2  # users, items, types: each once
    assert {(f"u{i}", "click") for i in range(600, 1800)} <= stored
    assert len(stored) == 1200 + 1200


def _codes(url: str) -> dict[tuple[int, str], int]:
    store = open_store(url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(select(dictionary.c.kind, dictionary.c.key, dictionary.c.ix)).all()
        return {(int(kind), str(key)): int(code) for kind, key, code in rows}
    finally:
        store.close()


def test_postgres_knows_the_size_of_a_dictionary_that_has_grown(pg_url: str) -> None:
    """A new store's dictionary gets planner statistics as it grows. Without them (autovacuum
    off, or not yet run) PostgreSQL took the table for empty and compared every looked-up key
    with every stored key of its kind: a 10M-event import ran at 18,663 events/s."""
    store = open_store(pg_url)
    try:
        store.events.append(
            "t", [Event(user_id=f"user-{i}", item_id="i0", type="view") for i in range(12_000)]
        )
        with store.engine.connect() as conn:
            tenant_ix = conn.execute(select(tenants.c.ix).where(tenants.c.id == "t")).scalar_one()
            plan = conn.exec_driver_sql(
                "EXPLAIN (FORMAT JSON) SELECT key, ix FROM dictionary "
                "WHERE tenant_ix = %s AND kind = %s",
                (tenant_ix, KIND_USER),
            ).scalar_one()
    finally:
        store.close()
    estimated = plan[0]["Plan"]["Plan Rows"]
    assert 6_000 <= estimated <= 24_000, plan  # the planner's idea of the 12,000 users


def test_a_writer_never_waits_for_the_statistics_lock(pg_url: str) -> None:
    """ANALYZE's lock is held until its transaction commits; a writer that finds it taken
    (another writer's ANALYZE, autovacuum) stores its events without waiting, and refreshes
    the statistics at its next new keys once the lock is free."""
    import psycopg

    store = open_store(pg_url)
    try:
        store.events.append("t", [Event(user_id="u0", item_id="i0", type="view")])
        with psycopg.connect(pg_url) as holder:  # the store's schema
            holder.execute("LOCK TABLE dictionary IN SHARE UPDATE EXCLUSIVE MODE")
            batch = [Event(user_id=f"a{i}", item_id="i0", type="view") for i in range(12_000)]
            assert store.events.append("t", batch).stored == 12_000  # no wait, no error
            assert _estimated_users(store) < 1_000  # skipped: the lock was taken
        batch = [Event(user_id=f"b{i}", item_id="i0", type="view") for i in range(12_000)]
        assert store.events.append("t", batch).stored == 12_000
        assert 12_000 <= _estimated_users(store) <= 48_000  # refreshed once the lock was free
    finally:
        store.close()


def test_the_write_transaction_keeps_its_lock_timeout_after_the_statistics(pg_url: str) -> None:
    store = open_store(pg_url)
    try:
        with write_tx(store.engine) as conn:
            before = conn.exec_driver_sql("SHOW lock_timeout").scalar_one()
            assert _analyze_unless_locked(conn)
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar_one() == before
    finally:
        store.close()


def _estimated_users(store: Store) -> int:
    with store.engine.connect() as conn:
        tenant_ix = conn.execute(select(tenants.c.ix).where(tenants.c.id == "t")).scalar_one()
        plan = conn.exec_driver_sql(
            "EXPLAIN (FORMAT JSON) SELECT ix FROM dictionary WHERE tenant_ix = %s AND kind = %s",
            (tenant_ix, KIND_USER),
        ).scalar_one()
    return int(plan[0]["Plan"]["Plan Rows"])
