"""Every operation of the OpenAPI spec against every kind of key: an expected status table.

The table names the scope each operation needs; an operation added to the API without a row
here fails `test_the_table_covers_every_operation`, so no route can ship without a scope.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from apitools import Api

from penchant.privacy.keys import create_key
from penchant.types import Scope

#: (method, path) -> the scope it needs (None: no key needed).
NEEDS: dict[tuple[str, str], Scope | None] = {
    ("GET", "/health"): None,
    ("GET", "/v1/recommendations"): Scope.RECS_READ,
    ("POST", "/v1/recommendations"): Scope.RECS_READ,
    ("GET", "/v1/sessions/{id}/recommendations"): Scope.RECS_READ,
    ("GET", "/v1/items/{id}/similar"): Scope.RECS_READ,
    ("POST", "/v1/events"): Scope.EVENTS_WRITE,
    ("PUT", "/v1/items/{id}"): Scope.CATALOG_WRITE,
    ("GET", "/v1/items/{id}"): Scope.CATALOG_READ,
    ("DELETE", "/v1/items/{id}"): Scope.CATALOG_WRITE,
    ("POST", "/v1/items"): Scope.CATALOG_WRITE,
    ("PUT", "/v1/users/{id}"): Scope.CATALOG_WRITE,
    ("GET", "/v1/users/{id}"): Scope.CATALOG_READ,
    ("DELETE", "/v1/users/{id}"): Scope.PRIVACY_ERASE,
    ("GET", "/v1/erasures/{id}"): Scope.PRIVACY_ERASE,
    ("GET", "/v1/users/{id}/consent"): Scope.CATALOG_READ,
    ("PUT", "/v1/users/{id}/consent"): Scope.CATALOG_WRITE,
    ("GET", "/v1/users/{id}/controls"): Scope.CATALOG_READ,
    ("POST", "/v1/users/{id}/controls"): Scope.CATALOG_WRITE,
    ("DELETE", "/v1/users/{id}/controls/{kind}/{value}"): Scope.CATALOG_WRITE,
    ("POST", "/v1/users/{id}/reset"): Scope.PRIVACY_ERASE,
    ("GET", "/v1/users/{id}/export"): Scope.PRIVACY_EXPORT,
    ("POST", "/v1/sessions"): Scope.RECS_READ,
    ("POST", "/v1/users"): Scope.CATALOG_WRITE,
    ("POST", "/v1/decisions"): Scope.RECS_READ,
    ("GET", "/v1/slots"): Scope.CATALOG_READ,
    ("GET", "/v1/slots/{id}"): Scope.CATALOG_READ,
    ("PUT", "/v1/slots/{id}"): Scope.CATALOG_WRITE,
    ("DELETE", "/v1/slots/{id}"): Scope.CATALOG_WRITE,
    ("PUT", "/v1/slots/{id}/variants/{variant_id}"): Scope.CATALOG_WRITE,
    ("POST", "/v1/slots/{id}/variants/{variant_id}/{action}"): Scope.CATALOG_WRITE,
    ("POST", "/v1/slots/{id}/proposals"): Scope.CATALOG_WRITE,
    ("GET", "/v1/experiments"): Scope.EXPERIMENTS_ADMIN,
    ("GET", "/v1/experiments/{id}"): Scope.EXPERIMENTS_ADMIN,
    ("PUT", "/v1/experiments/{id}"): Scope.EXPERIMENTS_ADMIN,
    ("DELETE", "/v1/experiments/{id}"): Scope.EXPERIMENTS_ADMIN,
    ("POST", "/v1/experiments/{id}/{action}"): Scope.EXPERIMENTS_ADMIN,
    ("PUT", "/v1/experiments/{id}/ramp"): Scope.EXPERIMENTS_ADMIN,
    ("GET", "/v1/experiments/{id}/report"): Scope.EXPERIMENTS_ADMIN,
    # needs catalog:read and recs:read: of the one-scope keys, only admin has both
    ("POST", "/v1/templates/preview"): Scope.ADMIN,
}


def operations(api: Api) -> list[tuple[str, str]]:
    spec = api.client.app.openapi()  # type: ignore[attr-defined]
    return [(m.upper(), path) for path, ops in spec["paths"].items() for m in ops]


def call(api: Api, method: str, path: str, headers: dict[str, str], ident: str = "x") -> int:
    url = re.sub(r"\{[^}]+\}", ident, path)
    return api.client.request(method, url, json={}, headers=headers).status_code


#: Scopes a scope grants besides itself, as the docs state them (admin grants every one).
ALSO_GRANTS = {
    Scope.CATALOG_WRITE: {Scope.CATALOG_READ},
    Scope.PUBLIC: {Scope.RECS_READ, Scope.EVENTS_WRITE},
}


def grants(scope: Scope, needed: Scope) -> bool:
    return scope in (needed, Scope.ADMIN) or needed in ALSO_GRANTS.get(scope, set())


def test_the_table_covers_every_operation(api: Api) -> None:
    assert sorted(operations(api)) == sorted(NEEDS)


def test_no_key_and_a_revoked_key_are_401_everywhere_but_health(api: Api) -> None:
    revoked = create_key(api.store.keys, "default", ["admin"])
    api.store.keys.revoke_key(revoked.split("_")[1])
    for (method, path), needed in NEEDS.items():
        if needed is None:
            assert call(api, method, path, {}) == 200
            continue
        assert call(api, method, path, {}) == 401, (method, path)
        assert call(api, method, path, {"Authorization": f"Bearer {revoked}"}) == 401


@pytest.mark.parametrize("scope", list(Scope))
def test_each_scope_opens_exactly_its_operations(api: Api, scope: Scope) -> None:
    """A key of one scope gets 403 wherever that scope is not enough, and is let through
    (no 401, no 403) wherever it is."""
    headers = api.headers(scope.value)
    # a public key may use only session ids the service issued it
    session = api.client.post("/v1/sessions", headers=headers).json().get("session_id", "x")
    for (method, path), needed in NEEDS.items():
        if needed is None:
            continue
        status = call(api, method, path, headers, session if "sessions/" in path else "x")
        if grants(scope, needed):
            assert status not in (401, 403), (scope, method, path, status)
        else:
            assert status == 403, (scope, method, path, status)


MINE_EVENT = {"event_id": "e-a", "user_id": "u-a", "item_id": "i-a", "type": "click"}
CONSENT_ON = {
    "purposes": {"personalization": {"granted": True, "version": "v2", "source": "banner"}}
}
CONSENT_OFF = {"purposes": {"personalization": {"granted": False, "version": "v9"}}}
EXPERIMENT = {
    "surface": "default",
    "arms": [{"name": "a", "surface": "default"}, {"name": "b", "surface": "default"}],
}


#: An admin key of another tenant, operation by operation, on this tenant's ids: the request
#: (path with query, JSON body) and the status it must get. In the order sent: reads, then
#: writes, then deletes. Nothing of this tenant is found, and what it writes or deletes stays
#: in its own tenant. Its tenant has no trained model: recommendation routes answer 503.
OTHER_TENANT: dict[tuple[str, str], tuple[str, dict[str, Any] | None, int]] = {
    ("GET", "/health"): ("/health", None, 200),
    ("GET", "/v1/recommendations"): ("/v1/recommendations?user_id=u-a", None, 503),
    ("POST", "/v1/recommendations"): ("/v1/recommendations", {"user_id": "u-a"}, 503),
    ("GET", "/v1/sessions/{id}/recommendations"): (
        "/v1/sessions/{session}/recommendations",
        None,
        503,
    ),
    ("GET", "/v1/items/{id}/similar"): ("/v1/items/i-a/similar", None, 503),
    ("GET", "/v1/items/{id}"): ("/v1/items/i-a", None, 404),
    ("GET", "/v1/users/{id}"): ("/v1/users/u-a", None, 404),
    ("GET", "/v1/erasures/{id}"): ("/v1/erasures/{job}", None, 404),
    ("GET", "/v1/users/{id}/consent"): ("/v1/users/u-a/consent", None, 200),
    ("GET", "/v1/users/{id}/controls"): ("/v1/users/u-a/controls", None, 200),
    ("GET", "/v1/users/{id}/export"): ("/v1/users/u-a/export", None, 404),
    ("GET", "/v1/slots"): ("/v1/slots", None, 200),
    ("GET", "/v1/slots/{id}"): ("/v1/slots/s-a", None, 404),
    ("GET", "/v1/experiments"): ("/v1/experiments", None, 200),
    ("GET", "/v1/experiments/{id}"): ("/v1/experiments/x-a", None, 404),
    ("GET", "/v1/experiments/{id}/report"): ("/v1/experiments/x-a/report", None, 404),
    ("POST", "/v1/sessions"): ("/v1/sessions", None, 201),
    ("POST", "/v1/events"): ("/v1/events", {"events": [MINE_EVENT]}, 200),
    ("PUT", "/v1/items/{id}"): ("/v1/items/i-a", {"title": "theirs"}, 200),
    ("POST", "/v1/items"): ("/v1/items", {"items": [{"id": "i-a", "title": "theirs"}]}, 200),
    ("PUT", "/v1/users/{id}"): ("/v1/users/u-a", {"attributes": {"plan": "free"}}, 200),
    ("POST", "/v1/users"): ("/v1/users", {"users": [{"id": "u-a"}]}, 200),
    ("PUT", "/v1/users/{id}/consent"): ("/v1/users/u-a/consent", CONSENT_OFF, 200),
    ("POST", "/v1/users/{id}/controls"): (
        "/v1/users/u-a/controls",
        {"kind": "category", "value": "c2"},
        201,
    ),
    ("PUT", "/v1/slots/{id}"): ("/v1/slots/s-a", {"policy": {"name": "ucb1"}}, 200),
    ("PUT", "/v1/slots/{id}/variants/{variant_id}"): (
        "/v1/slots/s-a/variants/v-a",
        {"text": "theirs", "status": "pending"},
        200,
    ),
    ("POST", "/v1/slots/{id}/variants/{variant_id}/{action}"): (
        "/v1/slots/s-a/variants/v-a/approve",  # its own variant
        None,
        204,
    ),
    ("POST", "/v1/decisions"): ("/v1/decisions", {"slot": "s-a", "session_id": "s"}, 200),
    ("PUT", "/v1/experiments/{id}"): ("/v1/experiments/x-a", EXPERIMENT, 200),
    ("POST", "/v1/experiments/{id}/{action}"): ("/v1/experiments/x-a/start", None, 200),
    ("PUT", "/v1/experiments/{id}/ramp"): ("/v1/experiments/x-a/ramp", {"ramp": 0.5}, 200),
    ("POST", "/v1/slots/{id}/proposals"): ("/v1/slots/s-a/proposals", {"brief": "b"}, 409),
    ("POST", "/v1/templates/preview"): (
        "/v1/templates/preview",
        {"template": {"html": "{{ profile.plan | default('none') }}"}, "user_id": "u-a"},
        200,
    ),
    ("DELETE", "/v1/items/{id}"): ("/v1/items/i-a", None, 204),  # its own i-a
    ("DELETE", "/v1/slots/{id}"): ("/v1/slots/s-a", None, 204),  # its own s-a
    ("DELETE", "/v1/experiments/{id}"): ("/v1/experiments/x-a", None, 409),  # its own, running
    ("DELETE", "/v1/users/{id}/controls/{kind}/{value}"): (
        "/v1/users/u-a/controls/category/c1",  # this tenant's control
        None,
        404,
    ),
    ("POST", "/v1/users/{id}/reset"): ("/v1/users/u-a/reset", None, 200),
    ("DELETE", "/v1/users/{id}"): ("/v1/users/u-a", None, 200),
}


def test_another_tenants_key_finds_and_changes_nothing_of_this_tenant(api: Api) -> None:
    mine = api.headers("admin")
    seed = [
        ("PUT", "/v1/items/i-a", {"title": "mine", "categories": ["c1"]}),
        ("PUT", "/v1/users/u-a", {"attributes": {"plan": "gold"}}),
        ("PUT", "/v1/users/u-a/consent", CONSENT_ON),
        ("POST", "/v1/users/u-a/controls", {"kind": "category", "value": "c1"}),
        ("POST", "/v1/events", {"events": [MINE_EVENT]}),
        ("PUT", "/v1/slots/s-a", {"policy": {"name": "thompson"}}),
        ("PUT", "/v1/slots/s-a/variants/v-a", {"text": "mine", "status": "pending"}),
        ("PUT", "/v1/experiments/x-a", {**EXPERIMENT, "description": "mine"}),
    ]
    for method, url, body in seed:
        assert api.client.request(method, url, json=body, headers=mine).status_code < 300, url
    before = _mine(api, mine)
    job = api.client.delete("/v1/users/u-gone", headers=mine).json()["job_id"]
    session = api.client.post("/v1/sessions", headers=mine).json()["session_id"]
    assert sorted(OTHER_TENANT) == sorted(NEEDS)  # so: every operation of the spec
    theirs = api.headers("admin", tenant="other")
    got = {}
    for (method, path), (url, body, _) in OTHER_TENANT.items():
        url = url.format(session=session, job=job)
        got[method, path] = api.client.request(method, url, json=body, headers=theirs)
    statuses = {op: answer.status_code for op, answer in got.items()}
    assert statuses == {op: status for op, (_, _, status) in OTHER_TENANT.items()}
    consent = got["GET", "/v1/users/{id}/consent"].json()
    assert "banner" not in str(consent) and "v2" not in str(consent)  # not this tenant's
    assert got["GET", "/v1/users/{id}/controls"].json()["controls"] == []
    assert got["POST", "/v1/events"].json()["stored"] == 1  # its own event, not a duplicate
    # the reset and the erasure found what it wrote itself, one of each, and no more
    assert got["POST", "/v1/users/{id}/reset"].json()["counts"]["events"] == 1
    erased = got["DELETE", "/v1/users/{id}"].json()["counts"]
    assert (erased["profile"], erased["consents"], erased["controls"]) == (1, 1, 1)
    assert _mine(api, mine) == before
    assert api.client.get(f"/v1/erasures/{job}", headers=mine).status_code == 200


def _mine(api: Api, headers: dict[str, str]) -> dict[str, Any]:
    """Everything this tenant holds about u-a and i-a, as its own key reads it."""
    reads = {
        "item": "/v1/items/i-a",
        "user": "/v1/users/u-a",
        "consent": "/v1/users/u-a/consent",
        "controls": "/v1/users/u-a/controls",
        "export": "/v1/users/u-a/export",
        "slot": "/v1/slots/s-a",
        "experiment": "/v1/experiments/x-a",
    }
    out = {}
    for name, url in reads.items():
        answer = api.client.get(url, headers=headers)
        assert answer.status_code == 200, (url, answer.text)
        out[name] = answer.json()
    out["export"].pop("exported_at", None)
    return out
