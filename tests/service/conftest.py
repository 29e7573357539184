"""Fixtures of the API tests: an app on each real store, and keys of any scope and tenant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apitools import MAX_BATCH, MAX_BODY, Api
from fastapi.testclient import TestClient

from penchant.service.app import create_app
from penchant.settings import load_settings


@pytest.fixture
def api(tmp_path: Path, store_url: str) -> Iterator[Api]:
    """The app on each persistent backend, with small limits and one custom event type."""
    settings = load_settings(
        tmp_path,
        store={"url": store_url},
        service={"max_batch": MAX_BATCH, "max_body_bytes": MAX_BODY},
        events={"custom_types": ["bookmark"]},
    )
    with TestClient(create_app(settings)) as client:
        yield Api(client=client, store=client.app.state.store)
