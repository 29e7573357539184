"""Hostile input: every answer is a clean 4xx in the error shape, or the input stored verbatim.

test_events_api.py and test_catalog_api.py cover a streamed body over the limit, malformed
JSON, and event and user batches over `max_batch`; this file covers every route that reads a
body (from the spec), and deep nesting, invalid UTF-8, SQL-looking ids, NUL characters and
lone surrogates, on each store.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from apitools import MAX_BODY, Api
from fastapi.testclient import TestClient

from penchant.service.app import create_app
from penchant.settings import load_settings
from penchant.store import EventFilter

#: Ids that would do damage if pasted into SQL: they must be stored and matched as plain text.
SQL_IDS = [
    "'; DROP TABLE events; --",
    "1 OR 1=1",
    '" ; SELECT',
    "x'); DELETE FROM items; --",
    "%' OR '1'='1",
]

JSON = {"content-type": "application/json"}


def body_routes(api: Api) -> list[tuple[str, str, str]]:
    """(method, path, a field of its body) of every operation that reads a JSON body, taken
    from the OpenAPI spec so that a route added later is covered too; path ids are `a1`."""
    spec = api.client.app.openapi()  # type: ignore[attr-defined]
    routes = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            schema = content["application/json"]["schema"]
            if "$ref" in schema:
                schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
            fields = schema.get("required") or list(schema.get("properties", {})) or ["x"]
            routes.append((method.upper(), re.sub(r"\{[^}]+\}", "a1", path), fields[0]))
    assert routes
    return routes


@pytest.fixture
def roomy(tmp_path: Path, store_url: str) -> Iterator[Api]:
    """The app with the default limits (32 MiB bodies, 10,000 rows), so that large bodies
    reach the parsers instead of the size limit."""
    settings = load_settings(tmp_path, store={"url": store_url})
    with TestClient(create_app(settings)) as client:
        yield Api(client=client, store=client.app.state.store)


def error(answer: Any, status: int) -> dict[str, Any]:
    """The `error` object of an answer, checked to have the status and the one error shape."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    detail: dict[str, Any] = answer.json()["error"]
    assert set(detail) == {"code", "message", "field"}
    return detail


def no_unhandled_errors(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing reached the last-resort handler (which would have logged and answered 500)."""
    assert not [r for r in caplog.records if r.name == "penchant.service" and r.levelno >= 40]


# -- size ------------------------------------------------------------------------------------
def test_oversized_body_is_413_on_every_route(api: Api) -> None:
    headers = api.headers() | JSON
    for method, path, key in body_routes(api):
        body = orjson.dumps({key: "x" * (MAX_BODY + 1)})
        answer = api.client.request(method, path, content=body, headers=headers)
        assert error(answer, 413) == {
            "code": "payload_too_large",
            "message": f"the request body is over the limit of {MAX_BODY} bytes",
            "field": "body",
        }, (method, path)
    assert api.client.get("/v1/items/a1", headers=headers).status_code == 404


def test_huge_batches_are_refused_naming_the_field(roomy: Api) -> None:
    headers = roomy.headers()
    items = {"items": [{"id": f"i{n}"} for n in range(10_001)]}
    answer = roomy.client.post("/v1/items", json=items, headers=headers)
    assert error(answer, 413)["field"] == "items"
    assert roomy.client.get("/v1/items/i0", headers=headers).status_code == 404
    recs = {"user_id": "u1", "exclude": [f"i{n}" for n in range(10_001)]}
    answer = roomy.client.post("/v1/recommendations", json=recs, headers=headers)
    assert error(answer, 422)["field"] == "exclude"


# -- structure and encoding ------------------------------------------------------------------
def test_100_000_levels_of_nesting_are_422(roomy: Api, caplog: pytest.LogCaptureFixture) -> None:
    headers = roomy.headers() | JSON
    depth = 100_000
    for method, path, key in body_routes(roomy):
        for closed in (False, True):
            deep = b"[" * depth + (b"]" * depth if closed else b"")
            body = b'{"' + key.encode() + b'": ' + deep + (b"}" if closed else b"")
            answer = roomy.client.request(method, path, content=body, headers=headers)
            assert error(answer, 422)["code"] == "invalid_input", (method, path, closed)
    no_unhandled_errors(caplog)


def test_invalid_utf8_is_422_naming_the_body(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    headers = api.headers() | JSON
    for method, path, key in body_routes(api):
        body = b'{"' + key.encode() + b'": "\xff\xfe caf\xe9"}'
        answer = api.client.request(method, path, content=body, headers=headers)
        detail = error(answer, 422)
        assert detail["code"] == "invalid_input", (method, path)
        assert detail["message"].startswith("the body is not valid JSON"), (method, path)
        assert "utf-8" in detail["message"].lower(), (method, path)
    no_unhandled_errors(caplog)


def test_lone_surrogates_are_422_or_read_back_the_same(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    headers = api.headers() | JSON
    for method, path, key in body_routes(api):
        body = b'{"' + key.encode() + b'": "\\ud800"}'
        answer = api.client.request(method, path, content=body, headers=headers)
        assert error(answer, 422)["code"] == "invalid_input", (method, path)
    # in a field the body needs, where only the surrogate is wrong
    body = b'{"kind": "item", "value": "\\ud800"}'
    answer = api.client.post("/v1/users/a1/controls", content=body, headers=headers)
    assert error(answer, 422)["field"] == "value"
    # A surrogate's UTF-8 form is invalid UTF-8, so a server never sees the surrogate in a
    # path itself; whatever it makes of it, the same path must lead to the same record.
    path = "/v1/items/%ED%A0%80"
    put = api.client.put(path, json={"title": "t"}, headers=headers)
    if put.status_code == 200:
        assert api.client.get(path, headers=headers).json() == put.json()
    else:
        assert 400 <= put.status_code < 500
        error(put, put.status_code)
    no_unhandled_errors(caplog)


def test_a_time_outside_the_calendar_in_utc_is_422(api: Api) -> None:
    """0001-01-01T00:00+01:00 is a valid datetime, but a year 0 in UTC: it was a 500."""
    headers = api.headers()
    for edge in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        event = {"user_id": "u1", "type": "view", "timestamp": edge}
        answer = api.client.post("/v1/events", json={"events": [event]}, headers=headers)
        assert "out of range" in error(answer, 422)["message"], edge
        answer = api.client.put("/v1/items/a1", json={"published_at": edge}, headers=headers)
        assert error(answer, 422)["field"] == "published_at", edge
        recs = {"user_id": "u1", "context": {"time": edge}}
        answer = api.client.post("/v1/recommendations", json=recs, headers=headers)
        assert error(answer, 422)["field"] == "context.time", edge


# -- ids -------------------------------------------------------------------------------------
def test_sql_looking_event_ids_are_stored_verbatim(api: Api) -> None:
    headers = api.headers("events:write")
    body = {
        "events": [
            {"event_id": f"e{n}", "user_id": sql, "item_id": sql, "type": "view"}
            for n, sql in enumerate(SQL_IDS)
        ]
    }
    answer = api.client.post("/v1/events", json=body, headers=headers)
    assert answer.json() == {"stored": len(SQL_IDS), "duplicates": [], "rejected": []}
    stored = {(e.user_id, e.item_id) for batch in api.store.events.scan("default") for e in batch}
    assert stored == {(sql, sql) for sql in SQL_IDS}
    # a filter on such an id matches that id as text, and only it
    for sql in SQL_IDS:
        (found,) = next(api.store.events.scan("default", EventFilter(item_id=sql)))
        assert found.user_id == sql
    # the events table is still there and takes more events
    more = api.client.post(
        "/v1/events", json={"events": [{"user_id": "u", "type": "view"}]}, headers=headers
    )
    assert more.json()["stored"] == 1
    assert api.store.events.count("default") == len(SQL_IDS) + 1


def test_sql_looking_catalog_ids_are_stored_verbatim(api: Api) -> None:
    for kind in ("items", "users"):
        catalog_ids_round_trip(api, kind)


def catalog_ids_round_trip(api: Api, kind: str) -> None:
    headers = api.headers("catalog:write")
    for sql in SQL_IDS:
        put = api.client.put(
            f"/v1/{kind}/{quote(sql, safe='')}", json={"attributes": {"q": sql}}, headers=headers
        )
        assert put.status_code == 200, put.text
    batch = {kind: [{"id": f"batch {sql}"} for sql in SQL_IDS]}
    assert api.client.post(f"/v1/{kind}", json=batch, headers=headers).json()["upserted"] == 5
    for sql in SQL_IDS:
        got = api.client.get(f"/v1/{kind}/{quote(sql, safe='')}", headers=headers)
        assert (got.json()["id"], got.json()["attributes"]) == (sql, {"q": sql})
        got = api.client.get(f"/v1/{kind}/{quote('batch ' + sql, safe='')}", headers=headers)
        assert got.json()["id"] == f"batch {sql}"
    never_stored = quote("' OR '1'='1", safe="")
    unknown = api.client.get(f"/v1/{kind}/{never_stored}", headers=headers)
    assert error(unknown, 404)["code"] == "not_found"


def test_nul_is_422_in_ids_and_text_and_verbatim_in_attributes(api: Api) -> None:
    headers = api.headers()
    for field in ("user_id", "item_id", "event_id"):
        event = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "view"}
        event[field] = "a\x00b"
        answer = api.client.post("/v1/events", json={"events": [event]}, headers=headers)
        assert error(answer, 422)["field"] == f"events[0].{field}"
    assert api.store.events.count("default") == 0
    for kind in ("items", "users"):
        answer = api.client.put(f"/v1/{kind}/a%00b", json={}, headers=headers)
        assert error(answer, 422)["field"] == "id", kind
    # PostgreSQL text cannot hold a NUL: a title or a consent version with one was a 500
    # there, and stored on SQLite
    for field in ("title", "text"):
        answer = api.client.put("/v1/items/a1", json={field: "a\x00b"}, headers=headers)
        assert error(answer, 422)["field"] == field
    consent = {"purposes": {"analytics": {"granted": True, "version": "a\x00b"}}}
    answer = api.client.put("/v1/users/a1/consent", json=consent, headers=headers)
    assert error(answer, 422)["field"] == "purposes.analytics.version"
    attributes = {"k\x00": "a\x00b", "list": ["\x00"]}
    put = api.client.put("/v1/items/a1", json={"attributes": attributes}, headers=headers)
    assert put.status_code == 200
    assert api.client.get("/v1/items/a1", headers=headers).json()["attributes"] == attributes
