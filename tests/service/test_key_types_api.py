"""Public client keys, revocation on the next request, per-key rate limits, the audit of key
operations, and ids of another tenant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apitools import MAX_BATCH, MAX_BODY, Api, events
from fastapi.testclient import TestClient

from penchant.errors import InvalidInput
from penchant.jobs.keys import audit_log, new_key, revoke_key
from penchant.jobs.store import settings_store
from penchant.privacy.keys import create_key
from penchant.service.app import create_app
from penchant.settings import Settings, load_settings


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_public_key_acts_only_for_sessions_the_service_issued(api: Api) -> None:
    public = bearer(create_key(api.store.keys, "default", ["public"]))
    session = api.client.post("/v1/sessions", headers=public)
    assert session.status_code == 201
    own = session.json()["session_id"]
    ok = {"events": [{"session_id": own, "item_id": "i1", "type": "view"}]}
    assert api.client.post("/v1/events", json=ok, headers=public).json()["stored"] == 1
    refused = [
        {"events": [{"user_id": "u1", "item_id": "i1", "type": "view"}]},
        {"events": [{"session_id": "made-up", "item_id": "i1", "type": "view"}]},
        {"events": [{"session_id": own + "x", "item_id": "i1", "type": "view"}]},
    ]
    for body in refused:
        answer = api.client.post("/v1/events", json=body, headers=public)
        assert answer.status_code == 403, body
    assert api.client.get("/v1/recommendations?user_id=u1", headers=public).status_code == 403
    forged = api.client.get("/v1/sessions/made-up/recommendations", headers=public)
    assert forged.status_code == 403
    # nothing else: no catalog, no privacy, no user ids
    assert api.client.get("/v1/items/i1", headers=public).status_code == 403
    assert api.client.delete("/v1/users/u1", headers=public).status_code == 403
    assert api.store.events.count("default") == 1


def test_a_session_of_one_tenant_is_not_valid_in_another(api: Api) -> None:
    mine = api.client.post("/v1/sessions", headers=api.headers("public")).json()["session_id"]
    other = bearer(create_key(api.store.keys, "other", ["public"]))
    body = {"events": [{"session_id": mine, "item_id": "i1", "type": "view"}]}
    assert api.client.post("/v1/events", json=body, headers=other).status_code == 403


def test_public_keys_hold_no_other_scope(api: Api) -> None:
    with pytest.raises(InvalidInput):
        create_key(api.store.keys, "default", ["public", "recs:read"])


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> Settings:
    return load_settings(
        tmp_path,
        store={"url": store_url},
        service={
            "max_batch": MAX_BATCH,
            "max_body_bytes": MAX_BODY,
            "key_cache_s": 3600.0,
            "rate_limit": 5.0,
            "rate_burst": 3.0,
        },
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def test_a_key_revoked_by_another_process_fails_on_the_next_request(
    settings: Settings, client: TestClient
) -> None:
    other = settings_store(settings)  # the CLI's own store, as in `penchant keys revoke`
    try:
        key = new_key(settings, other, "default", ["events:write"])
        assert client.post("/v1/events", json=events([1]), headers=bearer(key)).status_code == 200
        assert revoke_key(settings, other, key.split("_")[1])
    finally:
        other.close()
    # cached for an hour, yet refused at once
    assert client.post("/v1/events", json=events([2]), headers=bearer(key)).status_code == 401


def test_a_key_over_its_rate_gets_429_with_retry_after(
    settings: Settings, client: TestClient
) -> None:
    store = settings_store(settings)
    try:
        busy, calm = (new_key(settings, store, "default", ["admin"]) for _ in range(2))
    finally:
        store.close()
    codes = [client.get("/v1/items/x", headers=bearer(busy)).status_code for _ in range(6)]
    assert codes[:3] == [404, 404, 404]  # the burst
    assert 429 in codes[3:]
    limited = client.get("/v1/items/x", headers=bearer(busy))
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"
    assert client.get("/v1/items/x", headers=bearer(calm)).status_code == 404  # per key


def test_key_operations_are_audited_without_secrets(settings: Settings) -> None:
    store = settings_store(settings)
    try:
        key = new_key(settings, store, "default", ["events:write"], name="shop")
        key_id = key.split("_")[1]
        revoke_key(settings, store, key_id)
        revoke_key(settings, store, "000000000000")
        entries = audit_log(settings, store).entries("default")
    finally:
        store.close()
    actions = [(e.action, e.target, e.outcome) for e in reversed(entries)]
    assert actions == [
        ("key.create", f"key:{key_id}", "ok"),
        ("key.revoke", f"key:{key_id}", "ok"),
    ]
    assert all(key.split("_", 2)[2] not in str(e) for e in entries)


def test_ids_of_another_tenant_answer_404(api: Api) -> None:
    mine = api.headers("admin")
    api.client.put("/v1/items/shared-name", json={"title": "mine"}, headers=mine)
    api.client.put("/v1/users/u-mine", json={}, headers=mine)
    job = api.client.delete("/v1/users/u-gone", headers=mine).json()["job_id"]
    theirs = api.headers("admin", tenant="other")
    for method, path in [
        ("GET", "/v1/items/shared-name"),
        ("DELETE", "/v1/items/shared-name"),
        ("GET", "/v1/users/u-mine"),
        ("GET", f"/v1/erasures/{job}"),
    ]:
        assert api.client.request(method, path, headers=theirs).status_code == 404, path
    assert api.client.get("/v1/items/shared-name", headers=mine).status_code == 200
    assert api.client.get("/v1/users/u-mine", headers=mine).status_code == 200
