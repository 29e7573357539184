"""GET /v1/users/{id}/export: a person's data and what was inferred, through the service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apitools import group, seed_world
from fastapi.testclient import TestClient

from penchant.jobs.registry import ModelRegistry
from penchant.jobs.store import settings_hasher
from penchant.privacy.audit import AuditLog
from penchant.privacy.keys import create_key
from penchant.service.app import create_app
from penchant.settings import Settings, load_settings
from penchant.store import EventFilter, Store


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> Settings:
    settings = load_settings(tmp_path, store={"url": store_url})
    seed_world(settings)
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        key = create_key(client.app.state.store.keys, "default", ("privacy:export",))  # type: ignore[attr-defined]
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def store_of(client: TestClient) -> Store:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    return store


def admin(client: TestClient, tenant: str = "default") -> dict[str, str]:
    return {"Authorization": f"Bearer {create_key(store_of(client).keys, tenant, ('admin',))}"}


def test_the_export_holds_every_event_of_the_person_and_what_was_inferred(
    client: TestClient, settings: Settings
) -> None:
    sent = {"events": [{"event_id": "late", "user_id": "u1", "item_id": "i3", "type": "view"}]}
    assert client.post("/v1/events", json=sent, headers=admin(client)).status_code == 200

    answer = client.get("/v1/users/u1/export")

    assert answer.status_code == 200, answer.text
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="export-') and "u1" not in disposition
    data = answer.json()
    stored = [
        e for b in store_of(client).events.scan("default", EventFilter(user_id="u1")) for e in b
    ]
    assert [e["event_id"] for e in data["events"]] == [e.event_id for e in stored]
    assert len(data["events"]) == 11 and {e["user_id"] for e in data["events"]} == {"u1"}
    assert data["online_state"]["recent"] == ["i3"]  # what the service saw since training
    inferred = data["inferred"]
    # u1 is in the odd taste group: every item they took is of category "odd"
    assert all(group(e["item_id"]) == 1 for e in data["events"])
    assert inferred["top_categories"] == [{"category": "odd", "share": 1.0}]
    model = inferred["model"]
    assert model["version"] == ModelRegistry.of(settings).active()
    assert model["known"] is True and model["history_items"] == 10
    assert len(model["factors"]["ials"]) == 8


def test_every_export_is_audited_without_its_content(
    client: TestClient, settings: Settings
) -> None:
    assert client.get("/v1/users/u1/export").status_code == 200
    assert client.get("/v1/users/nobody/export").status_code == 404

    audit = AuditLog(store_of(client).engine, settings_hasher(settings))
    entries = [e for e in audit.entries("default") if e.action == "user.export"]
    assert [e.outcome for e in entries] == ["not_found", "ok"]
    assert entries[1].target == audit.user("default", "u1")
    key_id = client.headers["Authorization"].removeprefix("Bearer pk_").split("_")[0]
    assert {e.actor for e in entries} == {key_id}
    assert all("u1" not in e.target + e.outcome for e in entries)


def test_unknown_other_tenants_and_erased_ids_are_not_found(client: TestClient) -> None:
    assert client.get("/v1/users/never-seen/export").status_code == 404
    other = admin(client, tenant="other")
    answer = client.get("/v1/users/u1/export", headers=other)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"

    assert client.delete("/v1/users/u2", headers=admin(client)).status_code == 200
    assert client.get("/v1/users/u2/export").status_code == 404
