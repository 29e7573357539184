"""/v1/recommendations and friends, end to end: a trained bundle, the real store and state."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apitools import group, seed_world
from fastapi.testclient import TestClient

from penchant.jobs.registry import ModelRegistry
from penchant.jobs.store import settings_store
from penchant.jobs.train import train
from penchant.privacy.keys import create_key
from penchant.schema import Event
from penchant.service.app import create_app
from penchant.service.impressions import ServedList
from penchant.settings import Settings, load_settings
from penchant.store import EventFilter


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = load_settings(tmp_path, serving={"refresh_s": 0.05})
    seed_world(settings)
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        key = create_key(client.app.state.store.keys, "default", ("admin",))  # type: ignore[attr-defined]
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def recs(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.get("/v1/recommendations", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_known_user_gets_an_explained_list(client: TestClient, settings: Settings) -> None:
    body = recs(client, user_id="u1", k=5)
    assert set(body) == {"request_id", "items", "model_version", "pipeline"}
    assert body["model_version"] == ModelRegistry.of(settings).active()
    assert body["pipeline"] == "default"
    assert len(body["items"]) == 5
    # their own taste first; the default diversity stage may lift one of another category
    assert sum(group(i["item_id"]) == 1 for i in body["items"]) >= 4
    assert all(i["reason"] and isinstance(i["score"], float) for i in body["items"])


def test_post_takes_filters_rules_and_context(client: TestClient) -> None:
    answer = client.post(
        "/v1/recommendations",
        json={
            "user_id": "u1",
            "k": 4,
            "filters": {"categories": ["even"]},
            "rules": [{"action": "pin", "match": {"item_ids": ["i3"]}, "position": 1}],
            "context": {"device": "mobile", "locale": "fr-FR"},
        },
    )
    assert answer.status_code == 200, answer.text
    ids = [i["item_id"] for i in answer.json()["items"]]
    # the pin must pass the filters too: i3 is odd, so it is not shown
    assert ids and all(group(i) == 0 for i in ids)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "u1", "k": 0}, "k"),
        ({"user_id": "u1", "k": 10_000}, "k"),
        ({"user_id": "u1", "filters": {"categories": "even"}}, "filters.categories"),
        ({"user_id": "u1", "rules": [{"action": "lift", "match": {"item_ids": ["i1"]}}]},
         "rules.0.action"),
        ({"user_id": "u1", "surface": "nowhere"}, "surface"),
        ({"k": 3}, "user_id"),
        ({"user_id": "u1", "colour": "red"}, "colour"),
    ],
)  # fmt: skip
def test_bad_requests_are_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    answer = client.post("/v1/recommendations", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field


def test_an_event_changes_the_next_answer_at_once(client: TestClient) -> None:
    first = [i["item_id"] for i in recs(client, user_id="u1", k=5)["items"]]
    sent = client.post(
        "/v1/events",
        json={"events": [
            {"event_id": "x1", "user_id": "u1", "item_id": first[0], "type": "click"},
            {"event_id": "x2", "user_id": "u1", "item_id": first[1], "type": "dismiss"},
        ]},
    )  # fmt: skip
    assert sent.status_code == 200, sent.text
    after = [i["item_id"] for i in recs(client, user_id="u1", k=5)["items"]]
    assert first[0] not in after and first[1] not in after


def test_an_anonymous_session_is_steered_by_its_events(client: TestClient) -> None:
    views = [
        {"event_id": f"s{n}", "session_id": "visit-1", "item_id": f"i{n}", "type": "view"}
        for n in (2, 4, 6)
    ]
    assert client.post("/v1/events", json={"events": views}).status_code == 200
    answer = client.get("/v1/sessions/visit-1/recommendations", params={"k": 5})
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert {group(i["item_id"]) for i in items} == {0}
    assert not {"i2", "i4", "i6"} & {i["item_id"] for i in items}
    assert any(i["reason"].endswith("in this session") for i in items)


def test_similar_items(client: TestClient) -> None:
    answer = client.get("/v1/items/i9/similar", params={"k": 3})
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert len(items) == 3 and {group(i["item_id"]) for i in items} == {1}
    assert client.get("/v1/items/nope/similar").status_code == 404


def test_served_lists_are_logged_as_impressions(client: TestClient) -> None:
    body = recs(client, user_id="u3", k=4, context='{"device": "tv"}')
    store = client.app.state.store  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20  # handed on every second, by a process that starts first
    logged: list[Event] = []
    while time.monotonic() < deadline and len(logged) < 4:
        time.sleep(0.1)
        logged = [
            e
            for batch in store.events.scan(
                "default", EventFilter(user_id="u3", types=("impression",))
            )
            for e in batch
        ]
    assert [e.item_id for e in sorted(logged, key=lambda e: e.context.position)] == [
        i["item_id"] for i in body["items"]
    ]
    assert {e.context.request_id for e in logged} == {body["request_id"]}
    assert {e.context.device for e in logged} == {"tv"}
    assert {e.context.surface for e in logged} == {body["pipeline"]}


@pytest.mark.parametrize(
    ("device", "locale", "attributes"),
    [
        (None, None, None),
        ("tv", None, None),
        (None, "fr-CA", None),
        (None, None, {"experiment": 'e "1"', "arm": "b"}),
        ("tv", "fr-CA", {"experiment": "e", "holdout": True}),
    ],
)
def test_impression_contexts_are_the_json_of_their_fields(
    device: str | None, locale: str | None, attributes: dict[str, object] | None
) -> None:
    served = ServedList(
        "r1", "u1", None, ["a", "b", "c"], 'home "x"', device, locale, 0, attributes
    )
    for position, text in enumerate(served.contexts()):
        want: dict[str, object] = {"request_id": "r1", "surface": 'home "x"'}
        if device is not None:
            want["device"] = device
        want["position"] = position
        if locale is not None:
            want["locale"] = locale
        if attributes is not None:
            want["attributes"] = attributes
        assert json.loads(text) == want


def test_recommendations_need_the_recs_scope(client: TestClient) -> None:
    key = create_key(client.app.state.store.keys, "default", ("events:write",))  # type: ignore[attr-defined]
    answer = client.get(
        "/v1/recommendations", params={"user_id": "u1"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 403


def test_no_trained_model_is_a_clear_503(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        key = create_key(client.app.state.store.keys, "default", ("admin",))  # type: ignore[attr-defined]
        answer = client.get(
            "/v1/recommendations",
            params={"user_id": "u1"},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "unavailable"
    assert "penchant train" in answer.json()["error"]["message"]


def test_hot_swap_under_concurrent_requests(client: TestClient, settings: Settings) -> None:
    registry = ModelRegistry.of(settings)
    old = registry.active()
    answers: list[tuple[float, float, str]] = []  # (sent, answered, version) per request
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            sent = time.monotonic()
            answer = client.get("/v1/recommendations", params={"user_id": "u1", "k": 5})
            if answer.status_code != 200:
                failures.append(answer.text)
            else:
                answers.append((sent, time.monotonic(), answer.json()["model_version"]))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    store = settings_store(settings)
    try:
        new = train(settings, store, params={"ials": {"factors": 8, "epochs": 5}}).version
    finally:
        store.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(v == new for *_, v in answers):
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert not failures
    assert {v for *_, v in answers} == {old, new}
    # every request sent after the first answer from the new version got the new version
    switched = min(done for _, done, v in answers if v == new)
    assert all(v == new for sent, _, v in answers if sent > switched)


def test_a_catalog_change_reaches_serving_without_a_new_version(client: TestClient) -> None:
    first = recs(client, user_id="u1", k=3)
    top = first["items"][0]["item_id"]
    gone = client.put(f"/v1/items/{top}", json={"title": "Sold out", "available": False})
    assert gone.status_code == 200, gone.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        body = recs(client, user_id="u1", k=3)
        if top not in [i["item_id"] for i in body["items"]]:
            break
        time.sleep(0.05)
    assert top not in [i["item_id"] for i in body["items"]]
    assert body["model_version"] == first["model_version"]


def test_purchases_and_dismissals_before_training_are_left_out(
    client: TestClient, settings: Settings
) -> None:
    top = [i["item_id"] for i in recs(client, user_id="u1", k=4)["items"]]
    store = settings_store(settings)
    try:
        store.events.append(
            settings.tenant,
            [Event(event_id="old-d", user_id="u1", item_id=top[0], type="dismiss"),
             Event(event_id="old-p", user_id="u1", item_id=top[1], type="purchase")],
        )  # fmt: skip
        train(settings, store, params={"ials": {"factors": 8, "epochs": 5}})
    finally:
        store.close()
    # a fresh service (its online state empty) still knows them, from the trained bundle
    with TestClient(create_app(settings)) as fresh:
        fresh.headers["Authorization"] = client.headers["Authorization"]
        shown = [i["item_id"] for i in recs(fresh, user_id="u1", k=10)["items"]]
        assert top[0] not in shown and top[1] not in shown
        again = fresh.post(
            "/v1/recommendations",
            json={"user_id": "u1", "k": 40, "filters": {"exclude_seen": False,
                                                       "exclude_purchased": False}},
        )  # fmt: skip
        ids = [i["item_id"] for i in again.json()["items"]]
        assert top[1] in ids and top[0] not in ids


def test_training_saves_the_retrieval_index_that_serving_loads(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, serving={"ann_min_items": 10})
    seed_world(settings)
    bundle = ModelRegistry.of(settings).load()
    assert set(bundle.indexes) == {"ials"}  # the factor model only
    with TestClient(create_app(settings)) as client:
        engine = client.app.state.serving.of("default").engine()  # type: ignore[attr-defined]
        assert engine.serving.indexes["ials"].n_items == bundle.indexes["ials"].n_items
        key = create_key(client.app.state.store.keys, "default", ("admin",))  # type: ignore[attr-defined]
        client.headers["Authorization"] = f"Bearer {key}"
        assert len(recs(client, user_id="u1", k=5)["items"]) == 5


def test_a_request_sets_its_own_reranking_strength(client: TestClient) -> None:
    plain = recs(client, user_id="u1", k=6, rerank='{"diversity": 0}')
    # the default surface's diversity at its strongest moves items; at 0 it moves none
    strong = recs(client, user_id="u1", k=6, rerank='{"diversity": 5}')
    assert [i["item_id"] for i in plain["items"]] != [i["item_id"] for i in strong["items"]]
    posted = client.post(
        "/v1/recommendations", json={"user_id": "u1", "k": 6, "rerank": {"diversity": 0}}
    )
    assert posted.status_code == 200, posted.text
    assert [i["item_id"] for i in posted.json()["items"]] == [i["item_id"] for i in plain["items"]]
    for bad in ('{"no_such_stage": 0.5}', '{"diversity": "much"}', '{"diversity": -1}', "[1]"):
        answer = client.get("/v1/recommendations", params={"user_id": "u1", "rerank": bad})
        assert answer.status_code == 422, (bad, answer.text)
        assert "rerank" in json.dumps(answer.json()["error"])
