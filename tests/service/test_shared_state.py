"""Several server processes on one Redis answer consistently; each pins BLAS to one thread."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from apitools import group, seed_world
from fastapi.testclient import TestClient
from threadpoolctl import threadpool_info

from penchant.client import Client
from penchant.content.decisions import stats_key
from penchant.content.features import signature
from penchant.jobs.registry import ModelRegistry
from penchant.jobs.store import settings_store
from penchant.jobs.train import train
from penchant.privacy.keys import create_key
from penchant.schema.content import Slot
from penchant.service.app import create_app
from penchant.settings import Settings, load_settings, settings_environment
from penchant.store.state import open_state
from penchant.testing.server import free_port, start_server


@pytest.fixture
def shared(tmp_path: Path, redis_url: str) -> Iterator[tuple[Settings, str, list[Client]]]:
    """Two server processes (as two workers would be) on one data directory and one Redis."""
    tenant = f"t{uuid.uuid4().hex[:10]}"
    settings = load_settings(
        tmp_path, tenant=tenant, state={"url": redis_url}, serving={"refresh_s": 0.1}
    )
    seed_world(settings)
    store = settings_store(settings)
    try:
        key = create_key(store.keys, tenant, ("admin",))
    finally:
        store.close()
    env = settings_environment(settings)
    servers, clients = [], []
    try:
        for _ in range(2):
            port = free_port()
            servers.append(start_server(tmp_path, port, env=env, log=tmp_path / "server.log"))
            clients.append(Client(f"http://127.0.0.1:{port}", key))
        yield settings, tenant, clients
    finally:
        for client in clients:
            client.close()
        for server in servers:
            server.terminate()
            server.wait(10)
        open_state(redis_url).delete_prefix(tenant, "")


def test_an_event_sent_to_one_worker_steers_the_other(
    shared: tuple[Settings, str, list[Client]],
) -> None:
    _, _, (a, b) = shared
    before = b.recommend("u1", k=5).item_ids
    a.send_events(
        [
            {"event_id": "c1", "user_id": "u1", "item_id": before[0], "type": "click"},
            {"event_id": "d1", "user_id": "u1", "item_id": before[1], "type": "dismiss"},
        ]
    )
    after = b.recommend("u1", k=5).item_ids
    assert before[0] not in after and before[1] not in after
    # an anonymous session built on one worker is served by the other
    a.send_events(
        [{"event_id": f"v{n}", "session_id": "visit", "item_id": f"i{n}", "type": "view"}
         for n in (2, 4, 6)]
    )  # fmt: skip
    session = b.session_recommendations("visit", k=4)
    assert {group(i) for i in session.item_ids} == {0}
    assert not {"i2", "i4", "i6"} & set(session.item_ids)


def test_every_worker_swaps_to_a_new_version(shared: tuple[Settings, str, list[Client]]) -> None:
    settings, _, clients = shared
    old = ModelRegistry.of(settings).active()
    assert {c.recommend("u1", k=3).model_version for c in clients} == {old}
    store = settings_store(settings)
    try:
        new = train(settings, store, params={"ials": {"factors": 8, "epochs": 5}}).version
    finally:
        store.close()
    deadline = time.monotonic() + 15
    seen: set[str | None] = set()
    while time.monotonic() < deadline:
        seen = {c.recommend("u1", k=3).model_version for c in clients}
        if seen == {new}:
            break
        time.sleep(0.1)
    assert seen == {new}


def test_workers_learn_a_slot_as_one(shared: tuple[Settings, str, list[Client]]) -> None:
    """Decisions on one worker and their clicks on the other count once each, in Redis."""
    settings, tenant, (a, b) = shared
    slot = {"policy": {"name": "thompson"}, "reward": {"click": 1.0}}
    a.put_slot("hero", slot)
    for vid in ("x", "y"):
        a.put_variant("hero", vid, {"text": vid})
    decisions = [(a, b)[n % 2].decide("hero", session_id=f"s{n}") for n in range(20)]
    clicks = [
        {"event_id": f"k{n}", "session_id": f"s{n}", "type": "click",
         "context": {"decision_id": d.decision_id}}
        for n, d in enumerate(decisions) if n % 4 == 0
    ]  # fmt: skip
    b.send_events(clicks[:3])
    a.send_events(clicks[3:])
    state = open_state(settings.state.url)
    sig = signature(Slot.model_validate({"id": "hero", **slot}))
    cells = {}
    for vid in ("x", "y"):
        raw = state.get(tenant, stats_key(sig, vid))
        cells[vid] = np.frombuffer(raw, dtype="<f8") if raw is not None else np.zeros(2)
    assert sum(c[0] for c in cells.values()) == 20  # every decision's pull, once
    assert sum(c[1] for c in cells.values()) == 5  # every click's reward, once
    for vid, cell in cells.items():
        chosen = [n for n, d in enumerate(decisions) if d.variant_id == vid]
        assert cell[0] == len(chosen) and cell[1] == sum(n % 4 == 0 for n in chosen)


def test_the_service_runs_blas_on_one_thread(tmp_path: Path) -> None:
    # numpy's and scipy's OpenBLAS (pthreads) are what requests score with; their thread
    # count is process-wide. An OpenMP build (faiss bundles one) counts threads per calling
    # thread, and the approximate index sets that itself around each search (threads=1).
    with TestClient(create_app(load_settings(tmp_path))):
        pools = [
            p for p in threadpool_info()
            if p["user_api"] == "blas" and p.get("threading_layer") != "openmp"
        ]  # fmt: skip
        assert pools and all(p["num_threads"] == 1 for p in pools), pools
