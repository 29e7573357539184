"""Consent, user controls and "reset my profile" through the service: each change takes effect
on the person's next request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apitools import group, seed_world
from fastapi.testclient import TestClient

from penchant.jobs.store import settings_hasher
from penchant.privacy.audit import AuditLog
from penchant.privacy.consent import Preferences
from penchant.privacy.keys import create_key
from penchant.ranking import FilterSpec, RankingRequest
from penchant.service.app import create_app
from penchant.service.preferences import with_preferences
from penchant.settings import Settings, load_settings
from penchant.store.state import MemoryState

OFF = {"purposes": {"personalization": {"granted": False, "version": "v1", "source": "banner"}}}
ON = {"purposes": {"personalization": {"granted": True, "version": "v2"}}}


def deploy(tmp_path: Path, store_url: str, **privacy: Any) -> Settings:
    settings = load_settings(
        tmp_path, store={"url": store_url}, serving={"refresh_s": 0.05}, privacy=privacy
    )
    seed_world(settings)
    return settings


def serve(settings: Settings) -> TestClient:
    client = TestClient(create_app(settings))
    client.__enter__()
    key = create_key(client.app.state.store.keys, "default", ("admin",))  # type: ignore[attr-defined]
    client.headers["Authorization"] = f"Bearer {key}"
    return client


@pytest.fixture
def client(tmp_path: Path, sqlite_url: str) -> Iterator[TestClient]:
    client = serve(deploy(tmp_path, sqlite_url))
    yield client
    client.__exit__(None, None, None)


def recs(client: TestClient, **params: Any) -> list[str]:
    answer = client.get("/v1/recommendations", params=params)
    assert answer.status_code == 200, answer.text
    return [i["item_id"] for i in answer.json()["items"]]


def audited(client: TestClient, settings: Settings) -> list[tuple[str, str, str]]:
    log = AuditLog(client.app.state.store.engine, settings_hasher(settings))  # type: ignore[attr-defined]
    return [(e.action, e.target, e.outcome) for e in reversed(log.entries("default"))]


def test_consent_takes_effect_on_the_next_request(tmp_path: Path, store_url: str) -> None:
    settings = deploy(tmp_path, store_url)
    client = serve(settings)
    try:
        anonymous = recs(client, user_id="nobody-ever", k=10)
        personal = recs(client, user_id="u1", k=10)
        assert personal != anonymous

        off = client.put("/v1/users/u1/consent", json=OFF)
        assert off.status_code == 200, off.text
        assert off.json()["purposes"]["personalization"] == {
            "granted": False,
            "recorded": True,
            "version": "v1",
            "source": "banner",
            "at": off.json()["history"][0]["at"],
        }
        assert off.json()["purposes"]["analytics"]["recorded"] is False  # the default
        assert off.json()["purposes"]["analytics"]["granted"] is True
        assert recs(client, user_id="u1", k=10) == anonymous

        assert client.put("/v1/users/u1/consent", json=ON).status_code == 200
        assert recs(client, user_id="u1", k=10) == personal
        assert recs(client, user_id="u1", k=10, profiling="false") == anonymous

        ledger = client.get("/v1/users/u1/consent").json()
        assert [(h["granted"], h["version"], h["source"]) for h in ledger["history"]] == [
            (False, "v1", "banner"),
            (True, "v2", "api"),
        ]
        entries = audited(client, settings)
        assert [(a, o) for a, _, o in entries] == [("user.consent", "ok")] * 2
        assert all("u1" not in target for _, target, _ in entries)  # a keyed hash
    finally:
        client.__exit__(None, None, None)


def test_an_opt_in_deployment_personalizes_only_after_a_grant(
    tmp_path: Path, sqlite_url: str
) -> None:
    trained = deploy(tmp_path, sqlite_url)  # trained while the default was to grant
    opt_in = trained.privacy.model_copy(update={"consent_default": "denied"})
    client = serve(trained.model_copy(update={"privacy": opt_in}))
    try:
        anonymous = recs(client, user_id="nobody-ever", k=10)
        assert recs(client, user_id="u1", k=10) == anonymous
        assert client.put("/v1/users/u1/consent", json=ON).status_code == 200
        assert sum(group(i) == 1 for i in recs(client, user_id="u1", k=10)) >= 6  # their taste
        state = client.app.state.online.state  # type: ignore[attr-defined]
        assert isinstance(state, MemoryState)
        state._values.clear()  # a restart of memory:// state: the store is mirrored again
        time.sleep(0.06)
        assert recs(client, user_id="u1", k=10) != anonymous
    finally:
        client.__exit__(None, None, None)


def test_a_muted_category_and_a_dismissed_item_stay_out(client: TestClient) -> None:
    mute = client.post("/v1/users/u1/controls", json={"kind": "category", "value": "odd"})
    assert mute.status_code == 201, mute.text
    assert not [i for i in recs(client, user_id="u1", k=40) if group(i) == 1]
    assert client.delete("/v1/users/u1/controls/category/odd").status_code == 204
    listed = recs(client, user_id="u1", k=40)
    assert [i for i in listed if group(i) == 1]

    top = listed[0]
    body = {"kind": "item", "value": top}
    assert client.post("/v1/users/u1/controls", json=body).status_code == 201
    assert client.post("/v1/users/u1/controls", json=body).status_code == 200  # already
    assert top not in recs(client, user_id="u1", k=40)
    assert top not in recs(client, user_id="u1", k=40, profiling="false")
    controls = client.get("/v1/users/u1/controls").json()["controls"]
    assert [(c["kind"], c["value"]) for c in controls] == [("item", top)]

    missing = client.delete("/v1/users/u1/controls/provider/acme")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad = client.post("/v1/users/u1/controls", json={"kind": "mood", "value": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "kind"
    bad = client.put("/v1/users/u1/consent", json={"purposes": {"tracking": OFF["purposes"]}})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"


def test_a_reset_forgets_the_profile_but_keeps_the_person(
    client: TestClient, tmp_path: Path
) -> None:
    anonymous = recs(client, user_id="nobody-ever", k=10)
    assert client.put("/v1/users/u1/consent", json=ON).status_code == 200
    mute = {"kind": "provider", "value": "acme"}
    assert client.post("/v1/users/u1/controls", json=mute).status_code == 201

    reset = client.post("/v1/users/u1/reset")
    assert reset.status_code == 200, reset.text
    job = reset.json()
    assert job["job_id"].startswith("rs_") and job["counts"]["events"] == 10
    assert job["counts"]["model_rows"] == 4 and "consents" not in job["counts"]
    assert recs(client, user_id="u1", k=10) == anonymous
    assert client.get(f"/v1/erasures/{job['job_id']}").status_code == 200

    assert len(client.get("/v1/users/u1/consent").json()["history"]) == 1
    assert len(client.get("/v1/users/u1/controls").json()["controls"]) == 1
    sent = client.post(
        "/v1/events", json={"events": [{"user_id": "u1", "item_id": "i3", "type": "view"}]}
    )
    assert sent.json()["stored"] == 1  # no tombstone
    assert "i3" not in recs(client, user_id="u1", k=10)  # their new activity counts
    settings = client.app.state.settings  # type: ignore[attr-defined]
    assert ("user.reset", "ok") in [(a, o) for a, _, o in audited(client, settings)]


def test_an_erased_person_cannot_be_given_consent_or_controls(client: TestClient) -> None:
    assert client.delete("/v1/users/u2").status_code == 200
    put = client.put("/v1/users/u2/consent", json=ON)
    assert put.status_code == 409 and put.json()["error"]["code"] == "erased"
    post = client.post("/v1/users/u2/controls", json={"kind": "item", "value": "i1"})
    assert post.status_code == 409
    assert client.get("/v1/users/u2/consent").json()["history"] == []


def test_preferences_narrow_a_request_without_touching_the_others() -> None:
    request = RankingRequest(user_id="u1", filters=FilterSpec(exclude_categories=["adult"]))
    prefs = Preferences({"personalization": False}, ("odd",), ("acme",), ("i3",))
    narrowed = with_preferences(request, prefs, default_granted=True)
    assert narrowed.profiling is False and narrowed.exclude == ["i3"]
    assert narrowed.filters is not None
    assert narrowed.filters.exclude_categories == ["adult", "odd"]
    assert narrowed.filters.exclude_providers == ["acme"]
    assert "available_only" not in narrowed.filters.model_fields_set  # the surface's stays
    assert with_preferences(request, None, default_granted=True) is request
    assert with_preferences(request, None, default_granted=False).profiling is False
