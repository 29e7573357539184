"""API keys: format, hashed storage, authentication, revocation and scopes."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import pytest

from penchant.errors import Forbidden, InvalidInput, Unauthorized
from penchant.privacy import keys as keys_module
from penchant.privacy.keys import authenticate, create_key, has_scope, require_scope
from penchant.store import ApiKeyRecord, Store, open_store


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    opened = open_store(sqlite_url)
    yield opened
    opened.close()


def test_key_format_and_hash_only_storage(store: Store) -> None:
    key = create_key(store.keys, "shop", ["events:write", "catalog:read"], name="web")
    prefix, key_id, secret = key.split("_", 2)
    assert prefix == "pk"
    assert len(key_id) == 12
    int(key_id, 16)
    assert len(secret) >= 43  # 32 bytes in URL-safe base64
    (record,) = store.keys.list_keys("shop")
    assert record.key_id == key_id
    assert record.scopes == ("events:write", "catalog:read")
    assert record.name == "web"
    assert secret not in record.secret_hash
    assert record.secret_hash == "sha256:" + hashlib.sha256(secret.encode()).hexdigest()
    # Nothing in the database holds the secret.
    with store.engine.connect() as conn:
        dump = "".join(str(row) for row in conn.exec_driver_sql("SELECT * FROM api_keys"))
    assert secret not in dump


def test_keys_are_unique(store: Store) -> None:
    made = {create_key(store.keys, "t", ["admin"]) for _ in range(20)}
    assert len(made) == 20


def test_authenticate(store: Store) -> None:
    key = create_key(store.keys, "shop", ["events:write"])
    record = authenticate(store.keys, key)
    assert (record.tenant, record.scopes) == ("shop", ("events:write",))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # wrong secret
        lambda k: "pk_ffffffffffff_" + k.split("_", 2)[2],  # unknown key id
        lambda k: k.replace("pk_", "sk_", 1),
        lambda k: k.split("_", 2)[0] + "_" + k.split("_", 2)[1],  # no secret
        lambda _k: "",
    ],
)
def test_bad_keys_are_unauthorized_without_echo(store: Store, mangle: object) -> None:
    key = create_key(store.keys, "shop", ["events:write"])
    bad = mangle(key)  # type: ignore[operator]
    with pytest.raises(Unauthorized) as caught:
        authenticate(store.keys, bad)
    secret = key.split("_", 2)[2]
    assert secret[:8] not in str(caught.value)
    assert bad == "" or bad not in str(caught.value)


def test_revoked_key_is_rejected(store: Store) -> None:
    key = create_key(store.keys, "shop", ["events:write"])
    assert store.keys.revoke_key(key.split("_")[1])
    with pytest.raises(Unauthorized, match="revoked"):
        authenticate(store.keys, key)


def test_hashes_are_compared_in_constant_time(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = create_key(store.keys, "shop", ["events:write"])
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    authenticate(store.keys, key)
    assert len(calls) == 1
    assert calls[0][0] == calls[0][1]


def test_unknown_scope_is_invalid(store: Store) -> None:
    with pytest.raises(InvalidInput, match="unknown scope 'events:delete'"):
        create_key(store.keys, "shop", ["events:write", "events:delete"])
    with pytest.raises(InvalidInput):
        create_key(store.keys, "shop", [])
    assert store.keys.list_keys() == []


def record(*scopes: str) -> ApiKeyRecord:
    return ApiKeyRecord(key_id="k", tenant="t", secret_hash="h", scopes=scopes)


def test_scopes() -> None:
    require_scope(record("events:write"), "events:write")
    with pytest.raises(Forbidden, match="catalog:write"):
        require_scope(record("events:write", "catalog:read"), "catalog:write")
    for scope in ("events:write", "recs:read", "catalog:write", "catalog:read", "admin"):
        assert has_scope(record("admin"), scope)
    assert has_scope(record("catalog:write"), "catalog:read")
    assert not has_scope(record("catalog:read"), "catalog:write")
    assert not has_scope(record("recs:read"), "admin")


def test_cached_keys_trust_a_lookup_for_the_ttl_only(sqlite_url: str, store: Store) -> None:
    import time

    from penchant.privacy.keys import CachedKeys

    key = create_key(store.keys, "shop", ["events:write"])
    key_id = key.split("_")[1]
    cached = CachedKeys(store.keys, ttl_s=0.3)
    assert not cached.cached(key)
    assert authenticate(cached, key).tenant == "shop"
    assert cached.cached(key)
    other = open_store(sqlite_url)  # another worker, or the CLI, revokes it
    try:
        assert other.keys.revoke_key(key_id)
    finally:
        other.close()
    assert authenticate(cached, key).tenant == "shop"  # still trusted within the TTL
    time.sleep(0.35)
    with pytest.raises(Unauthorized, match="revoked"):
        authenticate(cached, key)
    # revoking through the cache itself takes effect at once
    second = create_key(store.keys, "shop", ["events:write"])
    authenticate(cached, second)
    cached.revoke_key(second.split("_")[1])
    with pytest.raises(Unauthorized, match="revoked"):
        authenticate(cached, second)
    # an unknown key id is looked up once per TTL, and a malformed key never
    unknown = "pk_000000000000_" + "x" * 43
    with pytest.raises(Unauthorized):
        authenticate(cached, unknown)
    assert cached.cached(unknown) and cached.cached("garbage")
