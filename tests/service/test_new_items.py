"""A new item added through the API is recommended on the very next request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from apitools import admin_client, world_events
from fastapi.testclient import TestClient

from penchant.jobs.store import settings_store
from penchant.jobs.train import train
from penchant.schema import Item
from penchant.service.app import create_app
from penchant.settings import Settings, load_settings
from penchant.testing.synthetic import topic_text

pytest.importorskip("sentence_transformers", reason="the content model needs penchant[text]")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """60 people in two taste groups over 40 items whose titles are about cooking (even
    numbers) or space (odd); the bundle has the content model."""
    settings = load_settings(tmp_path_factory.mktemp("data"), serving={"refresh_s": 60.0})
    events = world_events()
    store = settings_store(settings)
    try:
        store.events.append(settings.tenant, events)
        store.catalog.upsert_items(
            settings.tenant, [Item(id=f"i{i}", title=topic_text(i)) for i in range(40)]
        )
        train(
            settings,
            store,
            models=["popular", "itemknn", "ials", "content"],
            params={"ials": {"factors": 8, "epochs": 5}},
        )
    finally:
        store.close()
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with admin_client(create_app(settings)) as client:
        yield client


def listed(client: TestClient, user: str, k: int = 10) -> list[dict[str, Any]]:
    answer = client.get("/v1/recommendations", params={"user_id": user, "k": k})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_a_new_item_is_recommended_to_the_people_it_suits_on_the_next_request(
    client: TestClient,
) -> None:
    """refresh_s is a minute: only the write's own rebuild can make this pass."""
    space_fans, cooks = [f"u{u}" for u in range(1, 60, 2)], [f"u{u}" for u in range(0, 60, 2)]
    assert not any(i["item_id"] == "comet" for i in listed(client, "u1"))
    put = client.put(
        "/v1/items/comet",
        json={"title": "a space probe lands on a comet beyond the orbit of mars"},
    )
    assert put.status_code == 200, put.text
    got = {user: listed(client, user) for user in space_fans + cooks}
    shown = {user for user, items in got.items() if any(i["item_id"] == "comet" for i in items)}
    assert len(shown & set(space_fans)) >= 0.9 * len(space_fans)
    assert len(shown & set(cooks)) <= 0.1 * len(cooks)
    reason = next(i["reason"] for i in got["u1"] if i["item_id"] == "comet")
    assert reason == "new, like what you viewed"


def test_a_newcomer_gets_items_like_the_page_they_look_at(client: TestClient) -> None:
    """No history at all: the similar and content sources read the page's item (i7, space)."""
    answer = client.post(
        "/v1/recommendations",
        json={"session_id": "first-visit", "k": 5, "context": {"page_item": "i7"}},
    )
    assert answer.status_code == 200, answer.text
    ids = [i["item_id"] for i in answer.json()["items"]]
    assert len(ids) == 5 and "i7" not in ids
    assert sum(int(i[1:]) % 2 == 1 for i in ids if i.startswith("i")) >= 4
