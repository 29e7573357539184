"""Proof of erasure: canary people with marker strings are erased, then searched for in every
table (found from the schema metadata), every state key and value, the SQLite file and its
WAL, the model artifacts and the logs; a later write must not re-create them."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from penchant.errors import Erased
from penchant.jobs.consent import add_control, change_consent
from penchant.jobs.erase import erase, erasure_registry, rebuild
from penchant.jobs.registry import ModelRegistry
from penchant.jobs.store import settings_store
from penchant.jobs.train import train
from penchant.ranking.state import OnlineState
from penchant.schema import ControlKind, Event, Item, User
from penchant.settings import Settings, load_settings
from penchant.store import ConsentRecord, Control
from penchant.store.sql.tables import metadata
from penchant.store.state import MemoryState, StateStore, open_state
from penchant.types import Purpose

MARKER = "zq7canary"
CANARIES = [f"{MARKER}-u{n}" for n in range(2)]
START = datetime(2026, 1, 1, tzinfo=UTC)
PARAMS = {"ials": {"factors": 8, "epochs": 5}}


def _world(with_canaries: bool) -> tuple[list[Event], list[Item], list[User]]:
    rng = np.random.default_rng(0)
    events = []
    for u in range(40):
        for n, i in enumerate(rng.choice(30, size=8, replace=False).tolist()):
            events.append(
                Event(
                    event_id=f"e{u}-{i}",
                    user_id=f"u{u}",
                    session_id=f"s{u}",
                    item_id=f"i{i}",
                    type="view",
                    timestamp=START + timedelta(hours=u, minutes=n),
                )
            )
    items = [Item(id=f"i{i}", title=f"Item {i}") for i in range(32)]
    users = [User(id=f"u{u}", attributes={"plan": "free"}) for u in range(40)]
    if with_canaries:
        for c, canary in enumerate(CANARIES):
            for n, i in enumerate([*range(c, 12, 2), 30 + c]):  # i30, i31: canary-only items
                events.append(
                    Event(
                        event_id=f"{canary}-e{n}",
                        user_id=canary,
                        session_id=f"{canary}-session",
                        item_id=f"i{i}",
                        type="purchase" if n == 0 else "view",
                        timestamp=START + timedelta(hours=50 + c, minutes=n),
                        context={"attributes": {"page": f"{MARKER}-page"}},
                    )
                )
            users.append(User(id=canary, attributes={"email": f"{canary}@example.org"}))
    return events, items, users


def _deploy(
    path: Path, store_url: str, state_url: str, with_canaries: bool, tenant: str = "default"
) -> Settings:
    settings = load_settings(
        path,
        store={"url": store_url},
        state={"url": state_url},
        tenant=tenant,
        training={"params": PARAMS},
    )
    events, items, users = _world(with_canaries)
    store = settings_store(settings)
    try:
        store.events.append(settings.tenant, events)
        store.catalog.upsert_items(settings.tenant, items)
        store.catalog.upsert_users(settings.tenant, users)
        train(settings, store)
    finally:
        store.close()
    return settings


@pytest.fixture(params=["memory", "redis"])
def state_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    else:
        yield str(request.getfixturevalue("redis_url"))


def _rows_with_marker(settings: Settings) -> list[tuple[str, tuple[object, ...]]]:
    store = settings_store(settings)
    try:
        found = []
        with store.engine.connect() as conn:
            for table in metadata.sorted_tables:  # every table, new ones included
                for row in conn.execute(select(table)):
                    if any(MARKER in str(value) for value in row):
                        found.append((table.name, tuple(row)))
        return found
    finally:
        store.close()


def _files_with_marker(folder: Path) -> list[str]:
    needles = [MARKER.encode(), MARKER.encode("utf-32-le"), MARKER.encode("utf-16-le")]
    return [
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and any(n in p.read_bytes() for n in needles)
    ]


def _state_with_marker(state: StateStore, url: str, tenant: str) -> list[str]:
    if isinstance(state, MemoryState):
        return [k for (t, k), v in state._values.items() if MARKER in k or MARKER in str(v)]
    import redis

    client = redis.Redis.from_url(url)
    found = []
    for key in client.scan_iter(match=f"*{tenant}*"):
        kind = client.type(key)
        values = client.lrange(key, 0, -1) if kind == b"list" else [client.get(key) or b""]
        if MARKER.encode() in key or any(MARKER.encode() in v for v in values):
            found.append(key.decode())
    return found


def test_canaries_are_gone_from_every_table_key_file_and_log(
    tmp_path: Path, store_url: str, state_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = f"erasure-{uuid.uuid4().hex[:8]}"  # its own keys in the shared Redis
    settings = _deploy(tmp_path / "a", store_url, state_url, with_canaries=True, tenant=tenant)
    state = open_state(state_url)
    events, _, _ = _world(with_canaries=True)
    OnlineState(state, settings.tenant).record(events)
    assert _rows_with_marker(settings)  # the canaries are there to begin with
    assert _files_with_marker(settings.data_dir / "models")

    caplog.set_level(logging.DEBUG)
    store = settings_store(settings)
    try:
        for canary in CANARIES:  # a consent ledger, controls and their mirror in the state
            answer = ConsentRecord(Purpose.ANALYTICS, False, f"{MARKER}-v1", f"{MARKER}-banner")
            change_consent(
                settings, store, state, canary, [answer], tenant=settings.tenant, actor="test"
            )
            muted = Control(ControlKind.CATEGORY, f"{MARKER}-category")
            add_control(store, state, settings.tenant, canary, muted)
        for canary in CANARIES:
            receipt = erase(settings, store, state, canary)
            assert receipt.counts["events"] == 7
            assert receipt.counts["profile"] == 1
            assert receipt.counts["sessions"] == 1
            assert receipt.counts["model_rows"] == 4  # popular, itemknn, ials, taste
            assert receipt.counts["online_keys"] >= 2
            assert receipt.counts["consents"] == receipt.counts["controls"] == 1
            assert receipt.counts["preference_keys"] == 1
        # (a) no row of any table, (b) no state key or value, models, logs
        assert _rows_with_marker(settings) == []
        assert _state_with_marker(state, state_url, settings.tenant) == []
        assert _files_with_marker(settings.data_dir / "models") == []
        assert not [r.getMessage() for r in caplog.records if MARKER in r.getMessage()]
        # (c) the SQLite file and its WAL hold no marker bytes
        if store_url.startswith("sqlite"):
            assert _files_with_marker(settings.data_dir) == []
        # a later write does not re-create them
        ack = store.events.append(
            settings.tenant, [Event(user_id=CANARIES[0], item_id="i1", type="view")]
        )
        assert ack.stored == 0 and ack.refused == (0,)
        with pytest.raises(Erased):
            store.catalog.upsert_users(settings.tenant, [User(id=CANARIES[0])])
        assert _rows_with_marker(settings) == []
    finally:
        store.close()


def test_the_rebuild_equals_a_model_trained_without_the_canaries(
    tmp_path: Path, store_url: str
) -> None:
    settings = _deploy(tmp_path / "a", store_url, "memory://", with_canaries=True)
    state = MemoryState()
    store = settings_store(settings)
    try:
        jobs = [erase(settings, store, state, c).job_id for c in CANARIES]
        assert rebuild(settings, store, state).rebuilt == 0  # not due yet
        result = rebuild(settings, store, state, force=True)
        assert result.rebuilt == len(CANARIES)
        for job_id in jobs:
            job = store.privacy.job(settings.tenant, job_id)
            assert job is not None and job.rebuilt_version == result.version
    finally:
        store.close()
    rebuilt = ModelRegistry.of(settings).load()
    clean_url = f"sqlite:///{tmp_path / 'b' / 'penchant.db'}"
    clean = ModelRegistry.of(_deploy(tmp_path / "b", clean_url, "memory://", False)).load()
    ials, clean_ials = rebuilt.models["ials"], clean.models["ials"]
    assert list(ials.item_ids_) == list(clean_ials.item_ids_)
    np.testing.assert_allclose(ials.item_factors_, clean_ials.item_factors_, atol=1e-6)
    users = np.arange(len(clean_ials.user_ids_))
    assert list(ials.user_ids_) == list(clean_ials.user_ids_)
    for name in ("itemknn", "ials", "popular"):
        a, _ = rebuilt.models[name].rank(users, k=20)
        b, _ = clean.models[name].rank(users, k=20)
        assert (a == b).all(), name


def test_every_eraser_is_registered(tmp_path: Path, sqlite_url: str) -> None:
    settings = load_settings(tmp_path, store={"url": sqlite_url})
    store = settings_store(settings)
    try:
        registry = erasure_registry(settings, store, MemoryState(), served=lambda t, u: 0)
        assert registry.names() == [
            "store",
            "online_state",
            "preferences",
            "serving_guard",
            "model_artifacts",
            "served_models",
        ]
    finally:
        store.close()


def test_any_served_training_counts_as_the_rebuild_and_lifts_the_guard(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = _deploy(tmp_path, sqlite_url, "memory://", with_canaries=True)
    state = MemoryState()
    store = settings_store(settings)
    try:
        job_id = erase(settings, store, state, CANARIES[0]).job_id
        tombstone = store.privacy.tombstones.of(settings.tenant, CANARIES[0])
        assert state.get(settings.tenant, f"gone:{tombstone}") is not None
        version = train(settings, store).version  # e.g. the scheduled retraining
        job = store.privacy.job(settings.tenant, job_id)
        assert job is not None and job.rebuilt_version == version
        assert rebuild(settings, store, state).pending == 0
        assert state.get(settings.tenant, f"gone:{tombstone}") is None
    finally:
        store.close()
