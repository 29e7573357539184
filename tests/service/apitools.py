"""Helpers of the API tests: an app's client and store, keys, and event bodies."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from penchant.privacy.keys import create_key
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
