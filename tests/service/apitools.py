"""Helpers of the API tests: an app's client and store, keys, and event bodies."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient

from penchant.jobs.store import settings_store
from penchant.jobs.train import train
from penchant.privacy.keys import create_key
from penchant.schema import Event, Item
from penchant.settings import Settings
from penchant.store import Store

MAX_BATCH = 50
MAX_BODY = 64 * 1024


@dataclass
class Api:
    """A running app, its store, and a way to get keys."""

    client: TestClient
    store: Store

    def headers(self, *scopes: str, tenant: str = "default") -> dict[str, str]:
        """Authorization headers of a new key."""
        key = create_key(self.store.keys, tenant, scopes or ("admin",))
        return {"Authorization": f"Bearer {key}"}


def event(n: int, **fields: Any) -> dict[str, Any]:
    """A valid event with id `e<n>`."""
    return {"event_id": f"e{n}", "user_id": f"u{n % 3}", "item_id": f"i{n}", "type": "click"} | (
        fields
    )


def events(ids: Iterable[int]) -> dict[str, Any]:
    """A batch body of valid events."""
    return {"events": [event(n) for n in ids]}


START = datetime(2026, 10, 1, tzinfo=UTC)


def group(item_id: str) -> int:
    """The taste group of an item of `seed_world`."""
    return int(item_id.removeprefix("i")) % 2


@contextmanager
def admin_client(app: FastAPI) -> Iterator[TestClient]:
    """A started client of the app whose requests carry an admin key of `default`."""
    with TestClient(app) as client:
        key = create_key(client.app.state.store.keys, "default", ("admin",))  # type: ignore[attr-defined]
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def world_events() -> list[Event]:
    """60 users in two taste groups, 10 views each of their own group's 40 items."""
    events = []
    rng = np.random.default_rng(0)
    for u in range(60):
        own = [i for i in range(40) if i % 2 == u % 2]
        for n, i in enumerate(rng.choice(own, size=10, replace=False).tolist()):
            events.append(
                Event(
                    event_id=f"e{u}-{i}",
                    user_id=f"u{u}",
                    item_id=f"i{i}",
                    type="view",
                    timestamp=START + timedelta(hours=u + n),
                )
            )
    return events


def seed_world(settings: Settings) -> None:
    """60 users in two taste groups over 40 items (i0..i39, group = number % 2)."""
    events = world_events()
    items = [
        Item(id=f"i{i}", title=f"Item {i}", categories=["even" if i % 2 == 0 else "odd"])
        for i in range(40)
    ]
    store = settings_store(settings)
    try:
        store.events.append(settings.tenant, events)
        store.catalog.upsert_items(settings.tenant, items)
        train(settings, store, params={"ials": {"factors": 8, "epochs": 5}})
    finally:
        store.close()
