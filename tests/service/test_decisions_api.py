"""/v1/slots and /v1/decisions: define a slot, get decisions, send outcomes back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from apitools import Api
from fastapi.testclient import TestClient

from penchant.content.decisions import stats_key
from penchant.content.features import signature
from penchant.jobs.store import settings_store
from penchant.schema.content import Slot
from penchant.service.app import create_app
from penchant.settings import load_settings
from penchant.store import EventFilter


@pytest.fixture
def store_url(sqlite_url: str) -> str:
    """SQLite only: these answers do not depend on the backend, and the content store runs on
    both in tests/content/test_decisions.py (the suite's time goes elsewhere)."""
    return sqlite_url


SLOT = {
    "policy": {"name": "linucb", "alpha": 0.2},
    "features": ["device", "time"],
    "reward": {"click": 1.0},
}


def define(api: Api, headers: dict[str, str]) -> None:
    assert api.client.put("/v1/slots/home_hero", json=SLOT, headers=headers).status_code == 200
    for vid, text in (("a", "Fresh picks"), ("b", "Made for you")):
        put = api.client.put(
            f"/v1/slots/home_hero/variants/{vid}", json={"text": text}, headers=headers
        )
        assert put.status_code == 200, put.text
    pending = {"text": "Not yet", "status": "pending"}
    put = api.client.put("/v1/slots/home_hero/variants/p", json=pending, headers=headers)
    assert put.json()["status"] == "pending"


def test_a_decision_names_an_approved_variant_and_its_propensity(api: Api) -> None:
    admin = api.headers()
    define(api, admin)
    seen = set()
    for _ in range(40):
        got = api.client.post(
            "/v1/decisions",
            json={"slot": "home_hero", "user_id": "u1", "context": {"device": "mobile"}},
            headers=admin,
        )
        assert got.status_code == 200, got.text
        body = got.json()
        assert 0 < body["propensity"] <= 1 and len(body["decision_id"]) == 32
        assert body["policy"] == "linucb" and body["slot"] == "home_hero"
        seen.add(body["variant"]["id"])
    assert seen <= {"a", "b"} and seen  # the pending variant is never served
    listed = api.client.get("/v1/slots/home_hero", headers=admin).json()
    assert {v["id"]: v["status"] for v in listed["variants"]} == {
        "a": "approved",
        "b": "approved",
        "p": "pending",
    }
    assert (
        api.client.post("/v1/slots/home_hero/variants/p/approve", headers=admin).status_code == 204
    )
    ids = {
        api.client.post(
            "/v1/decisions", json={"slot": "home_hero", "session_id": "s"}, headers=admin
        ).json()["variant"]["id"]
        for _ in range(60)
    }
    assert "p" in ids


def test_an_outcome_with_the_decision_id_teaches_the_policy(api: Api) -> None:
    admin = api.headers()
    define(api, admin)
    decision = api.client.post(
        "/v1/decisions", json={"slot": "home_hero", "user_id": "u1"}, headers=admin
    ).json()
    app = api.client.app
    state = app.state.decider.state  # type: ignore[attr-defined]
    slot = Slot.model_validate({"id": "home_hero", **SLOT})
    key = stats_key(signature(slot), decision["variant"]["id"])
    before = np.frombuffer(state.get("default", key), dtype="<f8").copy()
    outcome = {
        "event_id": "c1",
        "user_id": "u1",
        "type": "click",
        "context": {"decision_id": decision["decision_id"]},
    }
    sent = api.client.post("/v1/events", json={"events": [outcome]}, headers=admin)
    assert sent.status_code == 200 and sent.json()["stored"] == 1
    after = np.frombuffer(state.get("default", key), dtype="<f8")
    d = 8  # the intercept, device (4) and time (3); LinUCB's b is the last d cells
    assert after[-d:].sum() > before[-d:].sum()
    # the same event again is a duplicate: it is not credited twice
    again = api.client.post("/v1/events", json={"events": [outcome]}, headers=admin)
    assert again.json()["duplicates"] == ["c1"]
    assert np.array_equal(np.frombuffer(state.get("default", key), dtype="<f8"), after)


def test_bad_requests_name_the_field(api: Api) -> None:
    admin = api.headers()
    define(api, admin)
    post = api.client.post
    missing = post("/v1/decisions", json={"user_id": "u1"}, headers=admin)
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "slot"
    bad = post("/v1/decisions", content=b"{not json", headers=admin)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "body"
    extra = post("/v1/decisions", json={"slot": "home_hero", "colour": 1}, headers=admin)
    assert extra.status_code == 422 and extra.json()["error"]["field"] == "colour"
    unknown = post("/v1/decisions", json={"slot": "nope", "user_id": "u1"}, headers=admin)
    assert unknown.status_code == 404
    policy = api.client.put(
        "/v1/slots/s2", json={"policy": {"name": "linucb", "alpha": -1}}, headers=admin
    )
    assert policy.status_code == 422 and policy.json()["error"]["field"].startswith("policy")
    reward = api.client.put("/v1/slots/s3", json={"reward": {"view": 1.0}}, headers=admin)
    assert reward.status_code == 422 and "reward" in reward.json()["error"]["field"]
    orphan = api.client.put("/v1/slots/none/variants/v", json={"text": "x"}, headers=admin)
    assert orphan.status_code == 404
    assert post("/v1/slots/home_hero/variants/zz/approve", headers=admin).status_code == 404
    proposals = post("/v1/slots/home_hero/proposals", json={"brief": "autumn"}, headers=admin)
    assert proposals.status_code == 409
    assert proposals.json()["error"]["field"] == "content.generation_url"


def test_keys_need_their_scopes(api: Api) -> None:
    define(api, api.headers())
    reader = api.headers("catalog:read")
    assert api.client.get("/v1/slots", headers=reader).json()["slots"][0]["id"] == "home_hero"
    assert api.client.put("/v1/slots/x", json={}, headers=reader).status_code == 403
    public = api.headers("public")
    as_user = {"slot": "home_hero", "user_id": "u1"}
    assert api.client.post("/v1/decisions", json=as_user, headers=public).status_code == 403


def test_decisions_are_logged_with_their_propensity(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        api = Api(client=client, store=client.app.state.store)  # type: ignore[attr-defined]
        admin = api.headers()
        define(api, admin)
        made = [
            client.post(
                "/v1/decisions", json={"slot": "home_hero", "session_id": "s1"}, headers=admin
            ).json()
            for _ in range(5)
        ]
    store = settings_store(settings)  # closing the app flushed the log
    try:
        logged = [
            e
            for batch in store.events.scan("default", EventFilter(types=("decision",)))
            for e in batch
        ]
    finally:
        store.close()
    assert sorted(e.context.decision_id for e in logged if e.context) == sorted(
        m["decision_id"] for m in made
    )
    by_id = {m["decision_id"]: m for m in made}
    for event in logged:
        assert event.context is not None and event.session_id == "s1"
        assert event.context.propensity == by_id[event.context.decision_id]["propensity"]
        assert (
            event.context.attributes["variant"] == by_id[event.context.decision_id]["variant"]["id"]
        )


def test_without_consent_the_persons_segment_steers_nothing(api: Api) -> None:
    admin = api.headers()
    define(api, admin)
    only_sports = {"text": "Match day", "eligibility": {"segments": ["sports"]}}
    api.client.put("/v1/slots/home_hero/variants/s", json=only_sports, headers=admin)
    withdrawn = {"purposes": {"personalization": {"granted": False, "version": "v1"}}}
    put = api.client.put("/v1/users/u9/consent", json=withdrawn, headers=admin)
    assert put.status_code == 200, put.text

    def chosen(user: str) -> set[str]:
        body = {"slot": "home_hero", "user_id": user, "context": {"segment": "sports"}}
        return {
            api.client.post("/v1/decisions", json=body, headers=admin).json()["variant"]["id"]
            for _ in range(40)
        }

    assert "s" not in chosen("u9")  # the segment-only variant needs the segment
    assert "s" in chosen("u8")  # someone who never answered: consent_default is granted
