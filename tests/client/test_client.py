"""`penchant.client` against the real server in a subprocess; recommendations on a stub transport.

The recommendation endpoints do not exist on the server yet, so their request building,
answer parsing and retry policy are tested with `httpx.MockTransport`; everything else runs
against the real service.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from penchant import __version__
from penchant.client import (
    ApiError,
    AsyncClient,
    Client,
    ConnectionFailed,
    Recommendations,
    RecommendedItem,
    ServiceUnavailable,
)
from penchant.jobs.init import init_data_dir
from penchant.privacy.keys import create_key
from penchant.schema import Event, Item, User
from penchant.settings import load_settings
from penchant.store import open_store
from penchant.testing.server import free_port, start_server


@dataclass(frozen=True)
class Server:
    """The running service, its admin key and a key that may only read the catalog."""

    url: str
    key: str
    reader_key: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("data")
    settings = load_settings(data)
    admin = init_data_dir(settings).key
    assert admin is not None
    store = open_store(settings.store_url)
    try:
        reader = create_key(store.keys, "default", ["catalog:read"])
    finally:
        store.close()
    log, port = data / "server.log", free_port()
    try:
        process = start_server(data, port, log=log)
    except RuntimeError as exc:
        pytest.fail(f"{exc}:\n{log.read_text()}")
    try:
        yield Server(url=f"http://127.0.0.1:{port}", key=admin, reader_key=reader)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, server.key) as penchant:
        yield penchant


def api_error(call: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as info:
        call()
    return info.value


# -- against the real server -----------------------------------------------------------------
@pytest.mark.slow
def test_health_needs_no_key(server: Server) -> None:
    with Client(server.url) as anonymous:
        health = anonymous.health()
    assert (health.status, health.version) == ("ok", __version__)


@pytest.mark.slow
def test_events_are_stored_once_and_duplicates_named(client: Client) -> None:
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    events: list[Event | dict[str, Any]] = [
        Event(event_id="rt-1", user_id="u1", item_id="i1", type="click", timestamp=at),
        {"event_id": "rt-2", "session_id": "s1", "item_id": "i2", "type": "view"},
        {"event_id": "rt-3", "user_id": "u2", "type": "rating", "value": 4.5, "timestamp": at},
    ]
    first = client.send_events(events)
    assert (first.stored, first.duplicates, first.rejected) == (3, (), ())
    again = client.send_events(iter(events))
    assert again.stored == 0
    assert sorted(again.duplicates) == ["rt-1", "rt-2", "rt-3"]


@pytest.mark.slow
def test_partial_batch_stores_the_valid_events_and_names_the_rejected(client: Client) -> None:
    events = [
        {"event_id": "p-1", "user_id": "u1", "type": "click"},
        {"event_id": "p-2", "user_id": "u1", "type": "teleport"},
        {"event_id": "p-3", "type": "click"},
    ]
    result = client.send_events(events, partial=True)
    assert result.stored == 1
    assert [(r.index, r.field) for r in result.rejected] == [
        (1, "events[1].type"),
        (2, "events[2]"),
    ]
    assert "teleport" in result.rejected[0].message


@pytest.mark.slow
def test_invalid_batch_is_rejected_whole_with_every_field(client: Client) -> None:
    events = [
        {"event_id": "w-1", "user_id": "u1", "type": "click"},
        {"event_id": "w-2", "user_id": "u1", "type": "teleport"},
    ]
    error = api_error(lambda: client.send_events(events))
    assert (error.status, error.code, error.field) == (422, "invalid_input", "events[1].type")
    assert [(row.index, row.field) for row in error.errors] == [(1, "events[1].type")]
    assert "events[1].type" in str(error) and "HTTP 422" in str(error)
    # All or none: the valid event was not stored either.
    assert client.send_events(events[:1]).stored == 1


@pytest.mark.slow
def test_empty_batch_sends_nothing(server: Server) -> None:
    with Client("http://127.0.0.1:9", server.key, retries=0) as unreachable:
        assert unreachable.send_events([]).stored == 0


@pytest.mark.slow
def test_items_upsert_get_delete(client: Client) -> None:
    published = datetime(2024, 5, 6, tzinfo=UTC)
    article = Item(id="it-1", title="A", categories=["news"], published_at=published)
    result = client.upsert_items([article, {"id": "it-2", "tags": ["x"], "available": False}])
    assert (result.upserted, result.rejected) == (2, ())
    assert client.get_item("it-1") == article
    assert client.get_item("it-2") == Item(id="it-2", tags=["x"], available=False)
    client.delete_item("it-1")
    error = api_error(lambda: client.get_item("it-1"))
    assert (error.status, error.code, error.field) == (404, "not_found", "id")
    assert api_error(lambda: client.delete_item("it-1")).status == 404


@pytest.mark.slow
def test_users_upsert_get_delete(client: Client) -> None:
    user = User(id="us-1", attributes={"plan": "pro", "age": 41})
    at = "2025-03-04T05:06:07Z"
    consent = {"id": "us-2", "consent": {"personalization": {"granted": True, "at": at}}}
    assert client.upsert_users([user, consent]).upserted == 2
    assert client.get_user("us-1") == user
    assert client.get_user("us-2") == User.model_validate(consent)
    client.delete_user("us-2")
    assert api_error(lambda: client.get_user("us-2")).code == "not_found"


@pytest.mark.slow
def test_partial_upsert_names_the_rejected_field(client: Client) -> None:
    result = client.upsert_items(
        [{"id": "ok-1"}, {"id": "bad-1", "available": "maybe"}], partial=True
    )
    assert result.upserted == 1
    assert [(r.index, r.field) for r in result.rejected] == [(1, "items[1].available")]


@pytest.mark.slow
@pytest.mark.parametrize("item_id", ["a b?c#d&e=f", "..", ".", "é%2F", "100%"])
def test_ids_are_quoted_into_one_path_segment(client: Client, item_id: str) -> None:
    client.upsert_items([{"id": item_id, "title": item_id}])
    assert client.get_item(item_id).title == item_id
    client.delete_item(item_id)


@pytest.mark.slow
def test_empty_id_is_refused_before_sending(client: Client) -> None:
    with pytest.raises(ValueError, match="item_id"):
        client.get_item("")


@pytest.mark.slow
def test_a_bad_key_is_401(server: Server) -> None:
    with Client(server.url, "pk_nope_nope") as stranger:
        error = api_error(lambda: stranger.get_item("it-2"))
    assert (error.status, error.code) == (401, "unauthorized")
    with Client(server.url) as anonymous:
        assert api_error(lambda: anonymous.send_events([{"type": "click"}])).status == 401


@pytest.mark.slow
def test_a_key_without_the_scope_is_403(server: Server) -> None:
    with Client(server.url, server.reader_key) as reader:
        error = api_error(lambda: reader.send_events([{"user_id": "u", "type": "click"}]))
    assert (error.status, error.code) == (403, "forbidden")


@pytest.mark.slow
def test_an_invalid_path_id_is_422_naming_the_field(client: Client) -> None:
    error = api_error(lambda: client.get_item("x" * 300))
    assert (error.status, error.code, error.field) == (422, "invalid_input", "id")


@pytest.mark.slow
def test_no_server_is_a_readable_connection_error(server: Server) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, server.key, retries=1, timeout=2) as nowhere:
        error = api_error(nowhere.health)
    assert isinstance(error, ConnectionFailed) and isinstance(error, ServiceUnavailable)
    assert error.status is None and error.code == "connection_failed"
    assert url in str(error) and server.key not in str(error)


@pytest.mark.slow
def test_async_client_round_trip(server: Server) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url, server.key) as penchant:
            assert (await penchant.health()).status == "ok"
            events = [{"event_id": "as-1", "user_id": "u1", "type": "view"}]
            assert (await penchant.send_events(events)).stored == 1
            assert (await penchant.send_events(events)).duplicates == ("as-1",)
            await penchant.upsert_items([Item(id="as-i", title="T")])
            assert (await penchant.get_item("as-i")).title == "T"
            await penchant.delete_item("as-i")
            with pytest.raises(ApiError) as info:
                await penchant.get_item("as-i")
            assert info.value.status == 404
        async with AsyncClient(server.url, "pk_nope_nope") as stranger:
            with pytest.raises(ApiError) as info:
                await stranger.get_user("u1")
            assert info.value.code == "unauthorized"

    asyncio.run(scenario())


@pytest.mark.slow
def test_import_stays_light() -> None:
    heavy = ["fastapi", "sqlalchemy", "numpy", "penchant.service", "penchant.schema"]
    code = f"import sys, penchant.client; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    assert out.stdout.strip() == "[]"


# -- recommendations, on a stub transport -----------------------------------------------------
ANSWER = {
    "request_id": "r-1",
    "items": [
        {"item_id": "i9", "score": 2.5, "reason": "because you read i1"},
        {"item_id": "i4", "score": 1.0, "reason": None},
    ],
    "model_version": "als-3",
    "pipeline": "default",
}


class Stub:
    """A transport that records requests and answers each from a list, the last one again."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers) or [httpx.Response(200, json=ANSWER)]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers[min(len(self.requests), len(self.answers)) - 1]

    def client(self, retries: int = 2) -> Client:
        return Client(
            "http://penchant.test/base/",
            "pk_k",
            transport=httpx.MockTransport(self),
            retries=retries,
        )

    def body(self, n: int = 0) -> Any:
        return orjson.loads(self.requests[n].content)


def test_recommend_posts_only_the_given_fields_and_parses_the_answer() -> None:
    stub = Stub()
    recs = stub.client().recommend(
        "u 1",
        k=3,
        surface="home",
        context={"device": "mobile"},
        rules=[{"boost": {"category": "news"}, "weight": 2}],
        exclude=iter(["i1"]),
    )
    request = stub.requests[0]
    assert (request.method, request.url.path) == ("POST", "/base/v1/recommendations")
    assert request.headers["Authorization"] == "Bearer pk_k"
    assert request.headers["Content-Type"] == "application/json"
    assert stub.body() == {
        "user_id": "u 1",
        "k": 3,
        "surface": "home",
        "context": {"device": "mobile"},
        "rules": [{"boost": {"category": "news"}, "weight": 2}],
        "exclude": ["i1"],
    }
    assert recs == Recommendations(
        request_id="r-1",
        items=(
            RecommendedItem(item_id="i9", score=2.5, reason="because you read i1"),
            RecommendedItem(item_id="i4", score=1.0),
        ),
        model_version="als-3",
        pipeline="default",
    )
    assert recs.item_ids == ["i9", "i4"]


def test_recommend_for_a_session_sends_the_defaults() -> None:
    stub = Stub()
    stub.client().recommend(session_id="s1")
    assert stub.body() == {"session_id": "s1", "k": 10}


@pytest.mark.parametrize("ids", [{}, {"user_id": "u", "session_id": "s"}])
def test_recommend_needs_exactly_one_of_user_and_session(ids: dict[str, Any]) -> None:
    stub = Stub()
    with pytest.raises(ValueError, match="exactly one"):
        stub.client().recommend(**ids)
    assert stub.requests == []


def test_similar_items_quotes_the_id_and_sends_k_and_surface() -> None:
    stub = Stub()
    client = stub.client()
    assert client.similar_items("a/b c", k=5, surface="pdp").request_id == "r-1"
    client.similar_items("i1")
    first, second = stub.requests
    assert (
        first.method == "GET"
        and first.url.raw_path == b"/base/v1/items/a%2Fb%20c/similar?k=5&surface=pdp"
    )
    assert dict(second.url.params) == {"k": "10"}


def test_session_recommendations_sends_the_context_as_json() -> None:
    stub = Stub()
    stub.client().session_recommendations("s/1", k=4, context={"locale": "fr"})
    request = stub.requests[0]
    assert request.method == "GET"
    assert request.url.raw_path.startswith(b"/base/v1/sessions/s%2F1/recommendations?")
    assert request.url.params["k"] == "4"
    assert orjson.loads(request.url.params["context"]) == {"locale": "fr"}


def test_a_get_is_retried_on_503_and_a_post_is_not() -> None:
    busy = httpx.Response(
        503,
        headers={"Retry-After": "0"},
        json={"error": {"code": "store_error", "message": "retry", "field": None}},
    )
    stub = Stub(busy, httpx.Response(200, json=ANSWER))
    assert stub.client().similar_items("i1").item_ids == ["i9", "i4"]
    assert len(stub.requests) == 2

    stub = Stub(busy)
    error = api_error(lambda: stub.client().recommend("u1"))
    assert isinstance(error, ServiceUnavailable) and error.code == "store_error"
    assert len(stub.requests) == 1

    stub = Stub(busy)
    assert api_error(lambda: stub.client(retries=2).similar_items("i1")).status == 503
    assert len(stub.requests) == 3


def test_a_4xx_is_never_retried() -> None:
    stub = Stub(
        httpx.Response(
            404, json={"error": {"code": "not_found", "message": "no such item", "field": "id"}}
        )
    )
    error = api_error(lambda: stub.client().similar_items("gone"))
    assert (error.status, error.code, error.message, error.field) == (
        404,
        "not_found",
        "no such item",
        "id",
    )
    assert len(stub.requests) == 1


def test_answers_that_are_not_the_api_s_raise_api_error() -> None:
    stub = Stub(httpx.Response(502, text="<html>bad gateway</html>"))
    error = api_error(lambda: stub.client().recommend("u1"))
    assert (error.status, error.code) == (502, "http_error")
    stub = Stub(httpx.Response(200, json={"items": []}))
    assert api_error(lambda: stub.client().recommend("u1")).code == "invalid_response"


def test_async_recommendations() -> None:
    stub = Stub()

    async def scenario() -> Recommendations:
        transport = httpx.MockTransport(stub)
        async with AsyncClient("http://penchant.test", "pk_k", transport=transport) as penchant:
            await penchant.similar_items("i1", k=2)
            return await penchant.recommend("u1", filters={"available": True})

    assert asyncio.run(scenario()).request_id == "r-1"
    assert [r.url.path for r in stub.requests] == ["/v1/items/i1/similar", "/v1/recommendations"]
    assert stub.body(1) == {"user_id": "u1", "k": 10, "filters": {"available": True}}
