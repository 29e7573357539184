"""POST /v1/events: storage, idempotency, all-or-nothing and partial batches, limits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
from apitools import MAX_BATCH, Api, event, events

from penchant.store import EventFilter


def stored_ids(api: Api, tenant: str = "default") -> list[str | None]:
    return [e.event_id for batch in api.store.events.scan(tenant) for e in batch]


def test_batch_is_stored(api: Api) -> None:
    body = {"events": [event(1, context={"position": 2, "request_id": "r1"}), event(2)]}
    answer = api.client.post("/v1/events", json=body, headers=api.headers("events:write"))
    assert answer.status_code == 200
    assert answer.json() == {"stored": 2, "duplicates": [], "rejected": []}
    (first,) = next(api.store.events.scan("default", EventFilter(item_id="i1")))
    assert (first.user_id, first.type, first.context and first.context.position) == (
        "u1",
        "click",
        2,
    )


def test_repeated_batch_reports_duplicates(api: Api) -> None:
    headers = api.headers("events:write")
    api.client.post("/v1/events", json=events([1, 2]), headers=headers)
    answer = api.client.post("/v1/events", json=events([2, 3]), headers=headers)
    assert answer.json() == {"stored": 1, "duplicates": ["e2"], "rejected": []}
    assert sorted(stored_ids(api)) == ["e1", "e2", "e3"]


def test_invalid_event_rejects_the_whole_batch(api: Api) -> None:
    body = events([1, 2, 3])
    body["events"][1]["type"] = "teleport"
    body["events"][2]["context"] = {"position": -1}
    answer = api.client.post("/v1/events", json=body, headers=api.headers("events:write"))
    assert answer.status_code == 422
    error = answer.json()
    assert error["error"]["code"] == "invalid_input"
    assert error["error"]["field"] == "events[1].type"
    assert [(e["index"], e["field"]) for e in error["errors"]] == [
        (1, "events[1].type"),
        (2, "events[2].context.position"),
    ]
    assert "teleport" in error["errors"][0]["message"]
    assert api.store.events.count("default") == 0


def test_partial_stores_the_valid_events(api: Api) -> None:
    body = events([1, 2, 3])
    del body["events"][1]["user_id"]
    answer = api.client.post(
        "/v1/events", params={"partial": "true"}, json=body, headers=api.headers("events:write")
    )
    assert answer.status_code == 200
    result = answer.json()
    assert result["stored"] == 2
    assert [(r["index"], r["field"]) for r in result["rejected"]] == [(1, "events[1]")]
    assert "user_id or a session_id" in result["rejected"][0]["message"]
    assert sorted(stored_ids(api)) == ["e1", "e3"]


def test_partial_with_nothing_valid_stores_nothing(api: Api) -> None:
    body = {"events": [{"type": "click"}]}
    answer = api.client.post(
        "/v1/events?partial=true", json=body, headers=api.headers("events:write")
    )
    assert answer.json()["stored"] == 0
    assert len(answer.json()["rejected"]) == 1


def test_unknown_item_is_accepted(api: Api) -> None:
    body = {"events": [event(1, item_id="never-in-the-catalog")]}
    answer = api.client.post("/v1/events", json=body, headers=api.headers("events:write"))
    assert answer.json()["stored"] == 1


def test_custom_event_type_from_settings(api: Api) -> None:
    headers = api.headers("events:write")
    ok = api.client.post(
        "/v1/events", json={"events": [event(1, type="bookmark")]}, headers=headers
    )
    assert ok.json()["stored"] == 1
    unknown = api.client.post(
        "/v1/events", json={"events": [event(2, type="bookmarked")]}, headers=headers
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "events[0].type"


def test_server_assigns_missing_event_ids(api: Api) -> None:
    body = {"events": [{"user_id": "u1", "type": "view"}, {"session_id": "s1", "type": "view"}]}
    answer = api.client.post("/v1/events", json=body, headers=api.headers("events:write"))
    assert answer.json()["stored"] == 2
    ids = stored_ids(api)
    assert all(i is not None and uuid.UUID(hex=i).version == 4 for i in ids)
    assert len(set(ids)) == 2


def test_malformed_json_is_422_not_500(api: Api) -> None:
    answer = api.client.post(
        "/v1/events", content=b'{"events": [', headers=api.headers("events:write")
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "events"


def test_not_an_object_and_empty_batches_are_422(api: Api) -> None:
    headers = api.headers("events:write")
    for body in (b"[]", b'{"events": []}', b'{"events": {}}', b'{"rows": [1]}', b'"x"'):
        answer = api.client.post("/v1/events", content=body, headers=headers)
        assert answer.status_code == 422, body
        assert answer.json()["error"]["code"] == "invalid_input"


def test_batch_over_max_batch_is_413(api: Api) -> None:
    answer = api.client.post(
        "/v1/events", json=events(range(MAX_BATCH + 1)), headers=api.headers("events:write")
    )
    assert answer.status_code == 413
    assert answer.json()["error"] == {
        "code": "payload_too_large",
        "message": f"{MAX_BATCH + 1} events in one batch; the limit is {MAX_BATCH}",
        "field": "events",
    }
    assert api.store.events.count("default") == 0


def test_body_over_the_limit_is_413(api: Api) -> None:
    body = orjson.dumps({"events": [event(1, context={"attributes": {"pad": "x" * 70_000}})]})
    answer = api.client.post("/v1/events", content=body, headers=api.headers("events:write"))
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"


def test_streamed_body_over_the_limit_is_413(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"events": [' + b" " * 70_000

    # A generator body goes out chunked, without Content-Length.
    answer = api.client.post("/v1/events", content=chunks(), headers=api.headers("events:write"))
    assert answer.status_code == 413
    assert api.store.events.count("default") == 0


def test_tenants_are_isolated(api: Api) -> None:
    one, two = api.headers("events:write"), api.headers("events:write", tenant="other")
    api.client.post("/v1/events", json=events([1, 2]), headers=one)
    answer = api.client.post("/v1/events", json=events([2]), headers=two)
    # The same event id in another tenant is another event.
    assert answer.json() == {"stored": 1, "duplicates": [], "rejected": []}
    assert (api.store.events.count("default"), api.store.events.count("other")) == (2, 1)
