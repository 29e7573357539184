"""Pseudonymization through the service: people are served, exported and erased by the ids
their app uses, while the tables, the state, the models and the logs hold only pseudonyms."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from penchant.jobs.store import settings_store
from penchant.jobs.train import train
from penchant.privacy.keys import create_key
from penchant.service.app import create_app
from penchant.settings import Settings, load_settings
from penchant.store.sql.tables import metadata

MARKER = "zq8alias"
PEOPLE = [f"{MARKER}-{n}@example.com" for n in range(40)]
START = datetime(2026, 1, 1, tzinfo=UTC)


def _events() -> list[dict[str, object]]:
    """Each person views 8 items of their taste group (items i0..i29, group = number % 2)."""
    rng = np.random.default_rng(0)
    out = []
    for u, person in enumerate(PEOPLE):
        own = [i for i in range(30) if i % 2 == u % 2]
        for n, i in enumerate(rng.choice(own, size=8, replace=False).tolist()):
            when = (START + timedelta(hours=u + n)).isoformat()
            out.append(
                {
                    "event_id": f"e{u}-{i}",
                    "user_id": person,
                    "item_id": f"i{i}",
                    "type": "view",
                    "timestamp": when,
                }
            )
    return out


def _admin(client: TestClient) -> dict[str, str]:
    key = create_key(client.app.state.store.keys, "default", ("admin",))  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {key}"}


def _rows_with_marker(settings: Settings) -> list[tuple[str, tuple[object, ...]]]:
    store = settings_store(settings)
    try:
        with store.engine.connect() as conn:
            return [
                (table.name, tuple(row))
                for table in metadata.sorted_tables
                for row in conn.execute(select(table))
                if any(MARKER in str(value) for value in row)
            ]
    finally:
        store.close()


def _files_with_marker(folder: Path) -> list[str]:
    return [
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and MARKER.encode() in p.read_bytes()
    ]


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> Settings:
    return load_settings(
        tmp_path / "data", store={"url": store_url}, privacy={"pseudonymize": True}
    )


def test_people_are_served_by_their_own_ids_and_stored_only_as_pseudonyms(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    events = _events()
    with TestClient(create_app(settings)) as client:
        admin = _admin(client)
        items = [
            {"id": f"i{i}", "categories": ["even" if i % 2 == 0 else "odd"]} for i in range(30)
        ]
        assert client.post("/v1/items", json={"items": items}, headers=admin).status_code == 200
        answer = client.post("/v1/events", json={"events": events}, headers=admin)
        assert answer.json()["stored"] == len(events), answer.text
        profile = {"attributes": {"plan": "gold"}}
        assert client.put(f"/v1/users/{PEOPLE[0]}", json=profile, headers=admin).status_code == 200
        consent = {"purposes": {"analytics": {"granted": False, "version": "v1"}}}
        put = client.put(f"/v1/users/{PEOPLE[1]}/consent", json=consent, headers=admin)
        assert put.status_code == 200 and put.json()["user_id"] == PEOPLE[1]
    store = settings_store(settings)
    try:
        train(settings, store, params={"ials": {"factors": 8, "epochs": 5}})
    finally:
        store.close()

    with TestClient(create_app(settings)) as client:
        admin = _admin(client)
        seen = {e["item_id"] for e in events if e["user_id"] == PEOPLE[0]}
        recs = client.get(
            "/v1/recommendations", params={"user_id": PEOPLE[0], "k": 5}, headers=admin
        )
        assert recs.status_code == 200, recs.text
        got = [r["item_id"] for r in recs.json()["items"]]
        # the model knows person 0 (even group) through their pseudonym: what they saw is
        # left out, and what is left is of their taste
        assert got and not set(got) & seen
        assert all(int(i[1:]) % 2 == 0 for i in got)

        user = client.get(f"/v1/users/{PEOPLE[0]}", headers=admin)
        assert user.json() == {"id": PEOPLE[0], "attributes": {"plan": "gold"}, "consent": {}}
        shown = client.get(f"/v1/users/{PEOPLE[1]}/consent", headers=admin).json()
        assert shown["purposes"]["analytics"] == {
            **shown["purposes"]["analytics"],
            "granted": False,
            "recorded": True,
        }
        export = client.get(f"/v1/users/{PEOPLE[0]}/export", headers=admin).json()
        assert export["user_id"] == PEOPLE[0] and export["profile"]["id"] == PEOPLE[0]
        assert {e["user_id"] for e in export["events"]} == {PEOPLE[0]}
        assert len(export["events"]) == 8

        # nothing kept anywhere holds an id as given
        assert _rows_with_marker(settings) == []
        assert _files_with_marker(settings.data_dir) == []
        state = client.app.state.online.state  # type: ignore[attr-defined]
        assert not [k for (_, k), v in state._values.items() if MARKER in k + str(v)]
        server_logs = [r for r in caplog.records if not r.name.startswith("httpx")]  # client's
        assert not [r.getMessage() for r in server_logs if MARKER in r.getMessage()]

        erased = client.delete(f"/v1/users/{PEOPLE[2]}", headers=admin)
        assert erased.status_code == 200 and erased.json()["counts"]["events"] == 8
        again = {"events": [{"user_id": PEOPLE[2], "item_id": "i0", "type": "view"}]}
        refused = client.post("/v1/events", json=again, headers=admin).json()
        assert refused["stored"] == 0
        assert refused["rejected"][0]["field"] == "events[0].user_id"
        assert client.get(f"/v1/users/{PEOPLE[2]}/export", headers=admin).status_code == 404
