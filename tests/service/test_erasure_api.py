"""DELETE /v1/users/{id} erases a person at once, end to end through the service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apitools import group, seed_world
from fastapi.testclient import TestClient

from penchant.jobs.store import settings_store
from penchant.privacy.keys import create_key
from penchant.service.app import create_app
from penchant.settings import Settings, load_settings
from penchant.store import EventFilter


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> Settings:
    settings = load_settings(tmp_path, store={"url": store_url}, serving={"refresh_s": 0.05})
    seed_world(settings)
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        key = create_key(client.app.state.store.keys, "default", ("admin",))  # type: ignore[attr-defined]
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def recs(client: TestClient, **params: Any) -> list[str]:
    answer = client.get("/v1/recommendations", params=params)
    assert answer.status_code == 200, answer.text
    return [i["item_id"] for i in answer.json()["items"]]


def test_an_erased_user_is_served_from_nothing_of_theirs(
    client: TestClient, settings: Settings
) -> None:
    client.post("/v1/events", json={"events": [{"user_id": "u1", "item_id": "i3", "type": "view"}]})
    personal = recs(client, user_id="u1", k=10)
    assert sum(group(i) == 1 for i in personal) >= 6  # their taste: odd items
    anonymous = recs(client, user_id="nobody-ever", k=10)
    assert personal != anonymous

    answer = client.delete("/v1/users/u1")
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert job["status"] == "erased"
    assert job["counts"]["events"] == 11  # 10 seeded and 1 sent
    assert job["counts"]["model_rows"] == 4  # popular, itemknn, ials, taste
    assert job["counts"]["online_keys"] >= 1
    assert job["rebuild_due_at"] > job["requested_at"]

    assert recs(client, user_id="u1", k=10) == anonymous  # nothing of theirs is left
    status = client.get(f"/v1/erasures/{job['job_id']}")
    assert status.status_code == 200 and status.json()["counts"] == job["counts"]

    store = settings_store(settings)
    try:
        assert not [e for b in store.events.scan("default", EventFilter(user_id="u1")) for e in b]
    finally:
        store.close()


def test_a_later_event_for_an_erased_id_is_refused_not_stored(client: TestClient) -> None:
    assert client.delete("/v1/users/u2").status_code == 200
    body = {
        "events": [
            {"user_id": "u2", "item_id": "i2", "type": "view"},
            {"user_id": "u4", "item_id": "i2", "type": "view"},
        ]
    }
    answer = client.post("/v1/events", json=body)
    assert answer.status_code == 200
    assert answer.json()["stored"] == 1
    assert [(r["index"], r["field"]) for r in answer.json()["rejected"]] == [
        (0, "events[0].user_id")
    ]
    put = client.put("/v1/users/u2", json={"attributes": {}})
    assert put.status_code == 409
    assert put.json()["error"]["code"] == "erased"


def test_erasing_an_unknown_id_still_leaves_a_tombstone(client: TestClient) -> None:
    job = client.delete("/v1/users/never-seen").json()
    assert job["counts"]["events"] == 0
    answer = client.post(
        "/v1/events", json={"events": [{"user_id": "never-seen", "item_id": "i1", "type": "view"}]}
    )
    assert answer.json()["stored"] == 0


def test_another_tenants_erasure_job_is_not_found(client: TestClient) -> None:
    job = client.delete("/v1/users/u3").json()
    store = client.app.state.store  # type: ignore[attr-defined]
    other = {"Authorization": f"Bearer {create_key(store.keys, 'other', ('admin',))}"}
    assert client.get(f"/v1/erasures/{job['job_id']}", headers=other).status_code == 404


def test_profiling_false_ranks_without_the_persons_data(client: TestClient) -> None:
    anonymous = recs(client, user_id="nobody-ever", k=10)
    assert recs(client, user_id="u5", k=10, profiling="false") == anonymous
    assert recs(client, user_id="u5", k=10) != anonymous
