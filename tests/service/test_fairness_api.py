"""Surfaces that run the popularity penalty, served over /v1/recommendations: its strength
set by the surface and overridden by the request."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apitools import admin_client, seed_world, world_events
from fastapi.testclient import TestClient

from penchant.settings import Settings, load_settings

SOURCES = [{"stage": "model", "model": "itemknn", "n": 100}, {"stage": "score"}]
PLAIN = {"stages": [*SOURCES, {"stage": "popularity_penalty", "strength": 0.0}]}
FAIR = {"stages": [*SOURCES, {"stage": "popularity_penalty", "strength": 0.9}]}
USERS = [f"u{u}" for u in range(0, 60, 3)]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    from penchant.service.app import create_app

    settings: Settings = load_settings(tmp_path, surfaces={"plain": PLAIN, "fair": FAIR})
    seed_world(settings)
    with admin_client(create_app(settings)) as client:
        yield client


def listed(client: TestClient, surface: str, user: str, rerank: dict[str, float]) -> list[str]:
    body = {"user_id": user, "k": 8, "surface": surface, "rerank": rerank}
    answer = client.post("/v1/recommendations", json=body)
    assert answer.status_code == 200, answer.text
    return [item["item_id"] for item in answer.json()["items"]]


def test_the_popularity_penalty_lowers_the_popularity_of_what_is_served(
    client: TestClient,
) -> None:
    views = Counter(event.item_id for event in world_events())

    def mean_views(surface: str, rerank: dict[str, float]) -> float:
        shown = [views[i] for user in USERS for i in listed(client, surface, user, rerank)]
        return sum(shown) / len(shown)

    assert mean_views("fair", {}) < mean_views("plain", {})


def test_a_request_sets_the_strength_its_surface_runs_at(client: TestClient) -> None:
    for user in USERS[:6]:
        plain = listed(client, "plain", user, {})
        fair = listed(client, "fair", user, {})
        assert plain != fair
        assert listed(client, "plain", user, {"popularity_penalty": 0.9}) == fair
        assert listed(client, "fair", user, {"popularity_penalty": 0.0}) == plain


@pytest.mark.parametrize("rerank", [{"popularity_penalty": 1.5}, {"popularity_penalty": -0.1}])
def test_a_strength_out_of_range_is_refused_naming_it(
    client: TestClient, rerank: dict[str, Any]
) -> None:
    body = {"user_id": "u1", "surface": "fair", "rerank": rerank}
    answer = client.post("/v1/recommendations", json=body)
    assert answer.status_code == 422, answer.text
    assert "rerank" in answer.text
