"""/v1/items and /v1/users: put, get, delete, batch upsert, id checks and tenant isolation."""

from __future__ import annotations

import pytest
from apitools import MAX_BATCH, Api


@pytest.mark.parametrize(
    ("kind", "record"),
    [
        ("items", {"title": "Blue shoes", "categories": ["shoes"], "attributes": {"price": 30}}),
        ("users", {"attributes": {"plan": "pro"}, "consent": {"analytics": {"granted": True}}}),
    ],
)
def test_put_get_delete(api: Api, kind: str, record: dict[str, object]) -> None:
    headers = api.headers("catalog:write")
    put = api.client.put(f"/v1/{kind}/a1", json=record, headers=headers)
    assert put.status_code == 200
    got = api.client.get(f"/v1/{kind}/a1", headers=headers)
    assert got.status_code == 200
    assert got.json()["id"] == "a1"
    assert got.json()["attributes"] == record["attributes"]
    replaced = api.client.put(f"/v1/{kind}/a1", json={"id": "a1"}, headers=headers)
    assert replaced.status_code == 200
    assert api.client.get(f"/v1/{kind}/a1", headers=headers).json()["attributes"] == {}
    if kind == "users":  # deleting a person is erasure: see test_erasure_api.py
        headers = api.headers("catalog:write", "privacy:erase")
        assert api.client.delete(f"/v1/{kind}/a1", headers=headers).status_code == 200
        assert api.client.get(f"/v1/{kind}/a1", headers=headers).status_code == 404
        return
    assert api.client.delete(f"/v1/{kind}/a1", headers=headers).status_code == 204
    missing = api.client.get(f"/v1/{kind}/a1", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert api.client.delete(f"/v1/{kind}/a1", headers=headers).status_code == 404


def test_item_fields_round_trip(api: Api) -> None:
    headers = api.headers("catalog:write")
    item = {"title": "T", "tags": ["a"], "published_at": "2024-01-01T00:00:00Z"}
    api.client.put("/v1/items/x", json=item, headers=headers)
    got = api.client.get("/v1/items/x", headers=headers).json()
    assert (got["title"], got["tags"], got["published_at"]) == ("T", ["a"], "2024-01-01T00:00:00Z")


@pytest.mark.parametrize("kind", ["items", "users"])
def test_path_and_body_id_must_match(api: Api, kind: str) -> None:
    headers = api.headers("catalog:write")
    answer = api.client.put(f"/v1/{kind}/a1", json={"id": "b2"}, headers=headers)
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "id"
    assert api.client.get(f"/v1/{kind}/a1", headers=headers).status_code == 404
    assert api.client.get(f"/v1/{kind}/b2", headers=headers).status_code == 404


def test_invalid_record_names_the_field(api: Api) -> None:
    headers = api.headers("catalog:write")
    answer = api.client.put("/v1/items/a1", json={"title": 3, "color": "red"}, headers=headers)
    assert answer.status_code == 422
    fields = [e["field"] for e in answer.json()["errors"]]
    assert fields == ["title", "color"]


@pytest.mark.parametrize("kind", ["items", "users"])
def test_batch_upsert(api: Api, kind: str) -> None:
    headers = api.headers("catalog:write")
    records = [{"id": f"r{i}", "attributes": {"n": i}} for i in range(5)]
    records.append({"id": "r0", "attributes": {"n": 99}})  # the last of an id wins
    answer = api.client.post(f"/v1/{kind}", json={kind: records}, headers=headers)
    assert answer.status_code == 200
    assert answer.json() == {"upserted": 6, "rejected": []}
    got = api.client.get(f"/v1/{kind}/r0", headers=headers).json()
    assert got["attributes"] == {"n": 99}
    assert api.client.get(f"/v1/{kind}/r4", headers=headers).status_code == 200


def test_invalid_batch_upserts_nothing_unless_partial(api: Api) -> None:
    headers = api.headers("catalog:write")
    body = {"items": [{"id": "ok"}, {"title": "no id"}]}
    answer = api.client.post("/v1/items", json=body, headers=headers)
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {"index": 1, "field": "items[1].id", "message": "Field required"}
    ]
    assert api.client.get("/v1/items/ok", headers=headers).status_code == 404
    partial = api.client.post("/v1/items?partial=true", json=body, headers=headers)
    assert partial.json()["upserted"] == 1
    assert api.client.get("/v1/items/ok", headers=headers).status_code == 200


def test_batch_upsert_limit(api: Api) -> None:
    body = {"users": [{"id": f"u{i}"} for i in range(MAX_BATCH + 1)]}
    answer = api.client.post("/v1/users", json=body, headers=api.headers("catalog:write"))
    assert answer.status_code == 413


def test_tenants_see_only_their_records(api: Api) -> None:
    mine, theirs = api.headers("catalog:write"), api.headers("admin", tenant="other")
    api.client.put("/v1/items/a1", json={"title": "mine"}, headers=mine)
    assert api.client.get("/v1/items/a1", headers=theirs).status_code == 404
    assert api.client.delete("/v1/items/a1", headers=theirs).status_code == 404
    api.client.put("/v1/items/a1", json={"title": "theirs"}, headers=theirs)
    assert api.client.get("/v1/items/a1", headers=mine).json()["title"] == "mine"
    assert api.client.get("/v1/items/a1", headers=theirs).json()["title"] == "theirs"
