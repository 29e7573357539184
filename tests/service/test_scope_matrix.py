"""Every operation of the OpenAPI spec against every kind of key: an expected status table.

The table names the scope each operation needs; an operation added to the API without a row
here fails `test_the_table_covers_every_operation`, so no route can ship without a scope.
"""

from __future__ import annotations

import re

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
