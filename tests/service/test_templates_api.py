"""POST /v1/templates/preview: a person's newsletter, rendered without deciding anything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apitools import admin_client, seed_world
from fastapi.testclient import TestClient

from penchant.content.decisions import stats_key
from penchant.content.features import signature
from penchant.schema import User
from penchant.service.app import create_app
from penchant.settings import load_settings
from penchant.store import EventFilter

NEWSLETTER = {
    "subject": "{{ slot('subject').text }}, {{ profile.first_name }}",
    "html": (
        "<h1>Hello {{ profile.first_name }}</h1>"
        "<ul>{% for item in recommend(3) %}<li>{{ item.title }}</li>{% endfor %}</ul>"
    ),
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(tmp_path)
    seed_world(settings)
    with admin_client(create_app(settings)) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        store.catalog.upsert_users("default", [User(id="u1", attributes={"first_name": "Ada"})])
        client.put("/v1/slots/subject", json={"policy": {"name": "thompson"}})
        client.put("/v1/slots/subject/variants/new", json={"text": "New for you"})
        yield client


def test_a_preview_renders_the_persons_recommendations_and_variants(client: TestClient) -> None:
    answer = client.post("/v1/templates/preview", json={"template": NEWSLETTER, "user_id": "u1"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["subject"] == "New for you, Ada"
    assert body["slots"] == {"subject": "new"}
    assert body["html"].startswith("<h1>Hello Ada</h1><ul><li>Item ")
    titles = [part.split("<")[0] for part in body["html"].split("<li>")[1:]]
    assert len(titles) == 3
    # the person's own recommendations, as the recommendation endpoint gives them
    served = client.post("/v1/recommendations", json={"user_id": "u1", "k": 3}).json()
    assert [f"i{t.removeprefix('Item ')}" for t in titles] == [
        i["item_id"] for i in served["items"]
    ]
    assert "Hello Ada" in body["text"] and titles[0] in body["text"]


def test_a_preview_decides_nothing_for_real(client: TestClient) -> None:
    for _ in range(5):
        client.post("/v1/templates/preview", json={"template": NEWSLETTER, "user_id": "u1"})
    app = client.app
    store = app.state.store  # type: ignore[attr-defined]
    slot = store.content.get_slot("default", "subject")
    pulls = app.state.decider.state.get("default", stats_key(signature(slot), "new"))  # type: ignore[attr-defined]
    assert pulls is None  # no choice was counted
    app.state.serving.log.close()  # type: ignore[attr-defined]
    assert store.events.count("default", EventFilter(types=("decision", "impression"))) == 0


def test_bad_templates_are_422_naming_the_part(client: TestClient) -> None:
    broken = {"html": "<p>{{ profile.first_name }</p>"}
    answer = client.post("/v1/templates/preview", json={"template": broken, "user_id": "u1"})
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "html"
    hostile = {"html": "{{ ''.__class__.__mro__ }}"}
    answer = client.post("/v1/templates/preview", json={"template": hostile, "user_id": "u1"})
    assert answer.status_code == 422 and "__class__" not in answer.json().get("html", "")
    nobody = client.post("/v1/templates/preview", json={"template": NEWSLETTER})
    assert nobody.status_code == 422 and nobody.json()["error"]["field"] == "user_id"
