"""POST /v1/recommendations is answered ahead of FastAPI's router (`HotRoutes`): its answers
and its errors are those of the rest of the API, and it stays documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apitools import seed_world
from fastapi import APIRouter, Depends, Request, Response
from fastapi.testclient import TestClient

from penchant.privacy.keys import create_key
from penchant.service import hot
from penchant.service.app import create_app
from penchant.service.hot import HotRoutes, hot_routes
from penchant.service.routes import recommendations
from penchant.settings import Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = load_settings(tmp_path, service={"max_body_bytes": 2048})
    seed_world(settings)
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def key(client: TestClient, *scopes: str) -> dict[str, str]:
    made = create_key(client.app.state.store.keys, "default", scopes)  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {made}"}


def test_the_route_is_answered_by_the_hot_path(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = hot.Request

    def spy(scope: object, receive: object) -> object:
        calls.append(str(scope["path"]))  # type: ignore[index]
        return original(scope, receive)  # type: ignore[arg-type]

    monkeypatch.setattr(hot, "Request", spy)
    headers = key(client, "recs:read")
    posted = client.post("/v1/recommendations", json={"user_id": "u1", "k": 3}, headers=headers)
    fetched = client.get("/v1/recommendations", params={"user_id": "u1", "k": 3}, headers=headers)
    assert posted.status_code == fetched.status_code == 200, posted.text
    assert calls == ["/v1/recommendations"]  # the POST only
    assert [i["item_id"] for i in posted.json()["items"]] == [
        i["item_id"] for i in fetched.json()["items"]
    ]


def test_its_errors_are_the_apis(client: TestClient) -> None:
    url = "/v1/recommendations"
    missing = client.post(url, json={"user_id": "u1"})
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = client.post(url, json={"user_id": "u1"}, headers=key(client, "events:write"))
    assert wrong.status_code == 403
    headers = key(client, "recs:read")
    broken = client.post(url, content=b"{not json", headers=headers)
    assert broken.status_code == 422
    assert broken.json()["error"]["field"] == "body"
    listed = client.post(url, json=[1, 2], headers=headers)
    assert (listed.status_code, listed.json()["error"]["field"]) == (422, "body")
    large = client.post(url, json={"user_id": "u1", "pad": "x" * 4096}, headers=headers)
    assert large.status_code == 413
    assert large.json()["error"]["code"] == "payload_too_large"


def test_an_unexpected_failure_is_a_plain_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("secret request data")

    monkeypatch.setattr(recommendations, "_answer", broken)
    answer = client.post(
        "/v1/recommendations", json={"user_id": "u1"}, headers=key(client, "recs:read")
    )
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal"
    assert "secret" not in answer.text


def test_it_stays_documented(client: TestClient) -> None:
    post = client.get("/openapi.json").json()["paths"]["/v1/recommendations"]["post"]
    assert post["security"] == [{"HTTPBearer": []}]
    assert "requestBody" in post


def test_only_endpoints_taking_the_request_alone_can_be_hot() -> None:
    router = APIRouter()

    async def dependency() -> int:
        return 1

    @router.post("/with-dependency")
    async def with_dependency(request: Request, n: int = Depends(dependency)) -> Response:
        return Response()

    with pytest.raises(TypeError, match="request alone"):
        HotRoutes(lambda *a: None, hot_routes(router.routes, [("POST", "/with-dependency")]))  # type: ignore[arg-type]
    with pytest.raises(LookupError, match="no route"):
        hot_routes(router.routes, [("GET", "/with-dependency")])
