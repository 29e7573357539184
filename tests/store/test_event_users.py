"""The user column beside the log covers every event through every append path, on both
backends, and erasure leaves the person's code in none of it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from alembic import command
from sqlalchemy import Engine, select, text

from penchant.schema import Event
from penchant.store import Store, events_to_table
from penchant.store.sql import event_users
from penchant.store.sql.engine import _alembic_config, make_engine, migrate
from penchant.store.sql.tables import KIND_USER, dictionary, tenants
from penchant.testing.store_contract import T0, ev


def _blobs(
    engine: Engine,
) -> list[tuple[int, int, int, np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    """Every row of `event_users`: tenant, first_seq, last_seq, seqs, users."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT tenant_ix, first_seq, last_seq, users, seqs FROM event_users "
                "ORDER BY tenant_ix, first_seq"
            )
        ).all()
    out = []
    for tenant_ix, first, last, users, seqs in rows:
        codes = np.frombuffer(users, dtype="<i8")
        numbers = (
            np.arange(first, first + len(codes))
            if seqs is None
            else np.frombuffer(seqs, dtype="<i8")
        )
        out.append((int(tenant_ix), int(first), int(last), numbers, codes))
    return out


def _assert_covered(engine: Engine) -> None:
    """Every event's (tenant, seq, user) is in the blobs, and each row's bounds are right."""
    listed = set()
    for tenant_ix, first, last, seqs, users in _blobs(engine):
        assert len(seqs) == len(users)
        assert first == int(seqs.min()) and last == int(seqs.max())
        listed.update(zip([tenant_ix] * len(seqs), seqs.tolist(), users.tolist(), strict=True))
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT tenant_ix, seq, coalesce(user_ix, -1) FROM events")
        ).all()
    missing = {tuple(int(v) for v in row) for row in stored} - listed
    assert not missing


def _code(engine: Engine, tenant: str, user_id: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(dictionary.c.ix)
                .join(tenants, tenants.c.ix == dictionary.c.tenant_ix)
                .where(
                    tenants.c.id == tenant,
                    dictionary.c.kind == KIND_USER,
                    dictionary.c.key == user_id,
                )
            ).scalar_one()
        )


def _held_anywhere(engine: Engine, code: int) -> bool:
    return any((users == code).any() for *_, users in _blobs(engine))


def _users(store: Store, tenant: str) -> list[str | None]:
    return [e.user_id for batch in store.events.scan(tenant) for e in batch]


def _ev(n: int, user: str | None, **extra: object) -> Event:
    """An event with a session, so that it may lack a user."""
    return ev(n, user=user, session_id=f"s{n % 5}", **extra)


def _append_through_every_path(store: Store) -> None:
    people = ["gone", "kept", None, "other"]
    # ids (executemany on SQLite, INSERT ... RETURNING on PostgreSQL), then again with
    # duplicates skipped among new rows
    store.events.append("t", [_ev(n, people[n % 4]) for n in range(40)])
    ack = store.events.append("t", [_ev(n, people[n % 3]) for n in range(30, 70)])
    assert ack.stored == 30 and len(ack.duplicates) == 10
    # no ids: numbers only, and with context (COPY on PostgreSQL)
    plain = [_ev(n, people[n % 4]).model_copy(update={"event_id": None}) for n in range(50)]
    store.events.append_table("t", events_to_table(plain))
    context = {"surface": "home", "position": 1}
    store.events.append(
        "t",
        [
            _ev(n, people[n % 4], context=context).model_copy(update={"event_id": None})
            for n in range(25)
        ],
    )
    store.events.append_table("t", events_to_table(plain[:7]), batch_key="k1")
    store.events.append("elsewhere", [ev(n, user="gone") for n in range(5)])  # another tenant


def test_every_append_path_is_covered(store: Store) -> None:
    _append_through_every_path(store)
    _assert_covered(store.engine)


def test_many_small_appends_leave_few_rows(store: Store) -> None:
    store.events.append("t", [ev(n, user=f"u{n % 7}") for n in range(20_000)])  # large
    for n in range(20_000, 20_030):  # single events extend one tiny row
        store.events.append("t", [ev(n, user=f"u{n % 7}")])
        if n % 10 == 0:  # another tenant's appends in between: numbers with gaps
            store.events.append("x", [ev(n).model_copy(update={"event_id": None})])
    sizes = [len(users) for tenant_ix, *_, users in _blobs(store.engine) if tenant_ix == 1]
    assert sizes == [16_384, 3_616, 30]
    for n in range(20_030, 30_030, 50):  # then batches: tiny rows fill, and small ones merge
        store.events.append("t", [ev(k, user=f"u{k % 7}") for k in range(n, n + 50)])
    sizes = [len(users) for tenant_ix, *_, users in _blobs(store.engine) if tenant_ix == 1]
    assert len(sizes) <= event_users._RECENT + 2 and sum(sizes) == 30_030
    assert sum(size >= event_users.SMALL for size in sizes) >= 2
    _assert_covered(store.engine)


def test_delete_user_removes_the_rows_and_the_code_everywhere(store: Store) -> None:
    _append_through_every_path(store)
    code = _code(store.engine, "t", "gone")
    before = _users(store, "t")
    assert store.events.delete_user("t", "gone") == before.count("gone") > 0
    assert sorted(map(str, _users(store, "t"))) == sorted(str(u) for u in before if u != "gone")
    assert _users(store, "elsewhere") == ["gone"] * 5
    assert not _held_anywhere(store.engine, code)
    _assert_covered(store.engine)


def test_erasure_removes_the_rows_and_the_code_everywhere(store: Store) -> None:
    _append_through_every_path(store)
    code = _code(store.engine, "t", "gone")
    expected = _users(store, "t").count("gone")
    erased = store.privacy.erase_user(
        "t", "gone", job_id="j1", actor="test", rebuild_due_at=T0 + timedelta(days=1)
    )
    assert erased.counts["events"] == expected > 0
    assert "gone" not in _users(store, "t")
    assert _users(store, "t").count("kept") > 0
    assert not _held_anywhere(store.engine, code)
    _assert_covered(store.engine)


def test_numbers_given_again_after_the_newest_rows_were_erased(store: Store) -> None:
    # SQLite gives max(seq) + 1: the erased rows' numbers come back for the next append.
    store.events.append("t", [ev(n, user="kept") for n in range(3)])
    store.events.append("t", [ev(n, user="gone") for n in range(3, 10)])
    store.events.delete_user("t", "gone")
    store.events.append("t", [ev(n, user="late") for n in range(10, 20)])
    _assert_covered(store.engine)
    assert store.events.delete_user("t", "late") == 10
    assert _users(store, "t") == ["kept"] * 3
    _assert_covered(store.engine)


def test_retention_drops_rows_whose_events_are_all_gone(store: Store) -> None:
    store.events.append("t", [ev(n, user=f"u{n % 3}", kind="view") for n in range(10_000)])
    store.events.append("t", [ev(n, user="u1", kind="click") for n in range(10_000, 10_010)])
    store.events.append("other", [ev(n) for n in range(5)])
    assert store.events.delete_before("t", "view", T0 + timedelta(days=1)) == 10_000
    tenants = [t for t, *_ in _blobs(store.engine)]
    assert len(tenants) == 2 and len(set(tenants)) == 2
    _assert_covered(store.engine)
    assert store.events.delete_before("t", "click", T0 + timedelta(days=1)) == 10
    assert len(_blobs(store.engine)) == 1
    _assert_covered(store.engine)


def test_a_copy_that_others_interleave_is_read_back(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("COPY is PostgreSQL's")
    real = event_users.copy_start
    starts: list[int] = []

    def interleaved(conn: Any) -> int:
        start = real(conn)
        starts.append(start)
        with psycopg.connect(store_url, autocommit=True) as other:  # another writer's numbers
            other.execute("SELECT nextval(pg_get_serial_sequence('events', 'seq'))")
        return start

    monkeypatch.setattr(event_users, "copy_start", interleaved)
    plain = [ev(n, user=f"u{n % 3}").model_copy(update={"event_id": None}) for n in range(50)]
    store.events.append_table("t", events_to_table(plain))
    [(_tenant, first, last, _seqs, _users)] = _blobs(store.engine)
    assert (first, last) == (starts[0] + 2, starts[0] + 51)  # the other writer's is left out
    _assert_covered(store.engine)
    assert store.events.delete_user("t", "u1") == 17


def test_the_migration_fills_the_column_from_stored_events(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0003")
        # more than one chunk of the backfill; two tenants, rows without a user, gaps
        with engine.begin() as conn:
            conn.execute(
                text(
                    "WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g "
                    "WHERE i < 139999) INSERT INTO events (tenant_ix, user_ix, type_ix, ts) "
                    "SELECT CASE WHEN i % 5 = 0 THEN 2 ELSE 1 END, "
                    "CASE WHEN i % 11 = 0 THEN NULL ELSE i % 97 END, 1, i FROM g"
                )
            )
            conn.execute(text("DELETE FROM events WHERE seq % 13 = 0"))
            n = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
        migrate(engine)
        _assert_covered(engine)
        assert sum(len(users) for *_, users in _blobs(engine)) == n
    finally:
        engine.dispose()


def test_a_large_append_makes_rows_of_at_most_largest(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_users, "SMALL", 600)
    monkeypatch.setattr(event_users, "TINY", 600)
    monkeypatch.setattr(event_users, "LARGEST", 1000)
    plain = [_ev(n, f"u{n % 9}").model_copy(update={"event_id": None}) for n in range(2500)]
    store.events.append_table("t", events_to_table(plain))
    assert sorted(len(users) for *_, users in _blobs(store.engine)) == [500, 1000, 1000]
    store.events.append("t", [_ev(n, "u1") for n in range(2500, 2510)])  # joins the 500
    assert sorted(len(users) for *_, users in _blobs(store.engine)) == [510, 1000, 1000]
    _assert_covered(store.engine)
    assert store.events.delete_user("t", "u1") == 288
    _assert_covered(store.engine)


def test_an_append_during_an_erasure_rewrites_no_row(store: Store, store_url: str) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time")
    store.events.append("t", [_ev(n, "u1") for n in range(10)])
    with psycopg.connect(store_url) as eraser:  # holds what an erasure holds
        tenant_ix = eraser.execute("SELECT ix FROM tenants WHERE id = 't'").fetchone()
        assert tenant_ix is not None
        eraser.execute("SELECT pg_advisory_xact_lock(%s, %s)", (event_users._LOCK, tenant_ix[0]))
        store.events.append("t", [_ev(n, "u2") for n in range(10, 20)])  # does not wait
    assert sorted(len(users) for *_, users in _blobs(store.engine)) == [10, 10]
    store.events.append("t", [_ev(n, "u3") for n in range(20, 30)])  # extends the newest
    assert [len(users) for *_, users in _blobs(store.engine)] == [10, 20]
    _assert_covered(store.engine)
