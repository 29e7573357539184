"""API keys on every route but /health: 401 without or with a bad key, 403 without the scope."""

from __future__ import annotations

import logging

import pytest
from apitools import Api, events

from penchant.privacy.keys import create_key


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Bearer pk_0123456789ab_wrongsecret"},
    ],
)
def test_missing_or_invalid_key_is_401(api: Api, headers: dict[str, str]) -> None:
    answer = api.client.post("/v1/events", json=events([1]), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json()["error"]["code"] == "unauthorized"
    assert api.store.events.count("default") == 0


def test_error_never_repeats_the_key(api: Api) -> None:
    key = create_key(api.store.keys, "default", ["events:write"])
    wrong = key[:-4] + "AAAA"
    answer = api.client.post(
        "/v1/events", json=events([1]), headers={"Authorization": f"Bearer {wrong}"}
    )
    assert answer.status_code == 401
    assert wrong.split("_", 2)[2] not in answer.text


def test_revoked_key_is_401(api: Api) -> None:
    key = create_key(api.store.keys, "default", ["events:write"])
    api.store.keys.revoke_key(key.split("_")[1])
    answer = api.client.post(
        "/v1/events", json=events([1]), headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/v1/events", "catalog:write"),
        ("PUT", "/v1/items/a", "catalog:read"),
        ("DELETE", "/v1/users/a", "catalog:read"),
        ("POST", "/v1/users", "events:write"),
        ("GET", "/v1/items/a", "events:write"),
        ("GET", "/v1/users/a", "recs:read"),
    ],
)
def test_wrong_scope_is_403(api: Api, method: str, path: str, scope: str) -> None:
    answer = api.client.request(method, path, json={}, headers=api.headers(scope))
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"


def test_write_scope_reads_and_admin_does_everything(api: Api) -> None:
    writer, admin = api.headers("catalog:write"), api.headers("admin")
    api.client.put("/v1/items/a", json={}, headers=writer)
    assert api.client.get("/v1/items/a", headers=writer).status_code == 200
    assert api.client.get("/v1/items/a", headers=api.headers("catalog:read")).status_code == 200
    assert api.client.post("/v1/events", json=events([1]), headers=admin).status_code == 200
    assert api.client.delete("/v1/items/a", headers=admin).status_code == 204


def test_health_needs_no_key(api: Api) -> None:
    answer = api.client.get("/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_no_log_line_carries_a_key(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """Whatever happens to a request, its key reaches no log: valid, wrong, revoked, and on
    routes that fail for other reasons (validation, an unknown id)."""
    good = create_key(api.store.keys, "default", ["admin"])
    revoked = create_key(api.store.keys, "default", ["admin"])
    api.store.keys.revoke_key(revoked.split("_")[1])
    wrong = good[:-4] + "AAAA"
    with caplog.at_level(logging.DEBUG):
        for key in (good, wrong, revoked):
            headers = {"Authorization": f"Bearer {key}"}
            api.client.post("/v1/events", json=events([1]), headers=headers)
            api.client.post("/v1/events", content=b"{not json", headers=headers)
            api.client.get("/v1/items/missing", headers=headers)
            api.client.post("/v1/recommendations", json={"k": 0}, headers=headers)
    assert caplog.records  # the requests were logged at all
    for key in (good, wrong, revoked):
        secret = key.split("_", 2)[2]
        assert secret not in caplog.text
