"""The app around the routes: OpenAPI, error mapping, body limit, bind safety and settings."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import anyio
import orjson
import pytest
from apitools import Api, events
from fastapi.testclient import TestClient

from penchant.errors import ConfigError, StoreError
from penchant.privacy.keys import create_key
from penchant.service.app import check_bind_safety, create_app
from penchant.service.limits import BodySizeLimit
from penchant.settings import load_settings, settings_environment
from penchant.store import open_store


def test_openapi_documents_routes_and_bodies(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert {"/health", "/v1/events", "/v1/items", "/v1/items/{id}", "/v1/users/{id}"} <= set(
        spec["paths"]
    )
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    event = body["schema"]["properties"]["events"]["items"]
    assert "event_id" in event["properties"]
    assert "$ref" not in orjson.dumps(body).decode()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    docs = api.client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_unknown_route_uses_the_error_body(api: Api) -> None:
    answer = api.client.get("/v1/nothing-here")
    assert answer.status_code == 404
    assert answer.json() == {"error": {"code": "not_found", "message": "Not Found", "field": None}}


def test_unexpected_error_is_a_generic_500_without_payload(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*_args: Any) -> NoReturn:
        raise RuntimeError("secret-payload u-123")

    monkeypatch.setattr(api.store.events, "append", boom)
    with caplog.at_level(logging.ERROR, logger="penchant.service"):
        answer = api.client.post("/v1/events", json=events([1]), headers=api.headers())
    assert answer.status_code == 500
    assert answer.json()["error"] == {
        "code": "internal",
        "message": "internal server error",
        "field": None,
    }
    assert "RuntimeError" in caplog.text
    assert "secret-payload" not in caplog.text
    assert "secret-payload" not in answer.text


def test_store_error_is_503(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*_args: Any) -> NoReturn:
        raise StoreError("store write failed: database is locked [parameters: u-123]")

    monkeypatch.setattr(api.store.events, "append", unavailable)
    answer = api.client.post("/v1/events", json=events([1]), headers=api.headers())
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert "u-123" not in answer.text


def test_bind_safety(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    try:
        check_bind_safety("127.0.0.1", store)
        check_bind_safety("localhost", store)
        check_bind_safety("::1", store)
        with pytest.raises(ConfigError, match="no API key"):
            check_bind_safety("0.0.0.0", store)
        key = create_key(store.keys, "default", ["admin"])
        check_bind_safety("0.0.0.0", store)
        store.keys.revoke_key(key.split("_")[1])
        with pytest.raises(ConfigError):
            check_bind_safety("192.168.1.5", store)
    finally:
        store.close()


def test_app_refuses_to_start_on_a_public_host_without_a_key(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, service={"host": "0.0.0.0"})
    with pytest.raises(ConfigError, match="refusing to serve"), TestClient(create_app(settings)):
        pass


def test_settings_environment_rebuilds_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(
        tmp_path,
        tenant="shop",
        store={"url": "sqlite:///x.db", "synchronous": "NORMAL"},
        service={"workers": 3, "port": 9000},
        events={"custom_types": ["bookmark"]},
    )
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    assert load_settings() == settings


async def _drive(app: BodySizeLimit, chunks: list[bytes]) -> tuple[int, list[bytes]]:
    """Send a chunked body through the middleware; return the status and what the app read."""
    pending = list(chunks)
    read: list[bytes] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def inner(_scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            read.append(message["body"])
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app.app = inner
    await app({"type": "http", "headers": []}, receive, send)  # type: ignore[arg-type]
    return sent[0]["status"], read


@pytest.fixture
def limit() -> Iterator[BodySizeLimit]:
    yield BodySizeLimit(app=None, max_bytes=10)  # type: ignore[arg-type]


def test_chunked_body_is_cut_off_past_the_limit(limit: BodySizeLimit) -> None:
    status, read = anyio.run(_drive, limit, [b"12345", b"67890", b"1", b"never read"])
    assert status == 413
    assert read == [b"12345", b"67890"]  # the app never saw the chunk past the limit
    assert anyio.run(_drive, limit, [b"12345", b"67890"])[0] == 200
