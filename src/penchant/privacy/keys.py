"""API keys: generated with `secrets`, stored only as hashes, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from penchant.errors import Forbidden, InvalidInput, RateLimited, Unauthorized
from penchant.store.base import ApiKeyRecord, KeyStore
from penchant.types import Scope

PREFIX = "pk"
KEY_ID_BYTES = 6  # 12 hex characters: public, only needs to be unique
SECRET_BYTES = 32  # 256 bits from the OS generator
HASH_SCHEME = "sha256"

#: Scopes that grant a scope beyond themselves (`admin` grants every scope).
IMPLIED_BY: dict[Scope, frozenset[Scope]] = {
    Scope.CATALOG_READ: frozenset({Scope.CATALOG_WRITE}),
    Scope.RECS_READ: frozenset({Scope.PUBLIC}),
    Scope.EVENTS_WRITE: frozenset({Scope.PUBLIC}),
}


def hash_secret(secret: str) -> str:
    """The stored form of a key secret.

    A plain SHA-256 is enough here, unlike for passwords: the secret is 256 random bits, so
    nobody can guess it from its hash however fast they can hash, and a slow hash (bcrypt,
    scrypt) would only add latency to every request.
    """
    return f"{HASH_SCHEME}:{hashlib.sha256(secret.encode()).hexdigest()}"


def create_key(keys: KeyStore, tenant: str, scopes: Sequence[str], name: str = "") -> str:
    """Create an API key for a tenant and store its hash.

    Args:
        keys: where key records are kept.
        tenant: the tenant the key can reach, and nothing beyond.
        scopes: what the key may do, names of `penchant.types.Scope`.
        name: a label for people (which app or person holds the key).

    Returns:
        The key, `pk_<key_id>_<secret>`. It is shown once: only its hash is stored.

    Raises:
        InvalidInput: a scope is unknown, or no scope is given.
    """
    known = {s.value for s in Scope}
    unknown = [s for s in scopes if s not in known]
    if unknown:
        raise InvalidInput(
            f"unknown scope {unknown[0]!r}; expected one of {', '.join(sorted(known))}",
            field="scopes",
        )
    if not scopes:
        raise InvalidInput("a key needs at least one scope", field="scopes")
    if Scope.PUBLIC in scopes and len(set(scopes)) > 1:
        raise InvalidInput(
            "a public key has the 'public' scope alone: it may be seen by anyone",
            field="scopes",
        )
    key_id = secrets.token_hex(KEY_ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    keys.put_key(
        ApiKeyRecord(
            key_id=key_id,
            tenant=tenant,
            secret_hash=hash_secret(secret),
            scopes=tuple(dict.fromkeys(scopes)),
            name=name,
            created_at=datetime.now(UTC),
        )
    )
    return f"{PREFIX}_{key_id}_{secret}"


def parse_key(token: str) -> tuple[str, str]:
    """Split a key into its public id and its secret.

    Raises:
        Unauthorized: the text is not shaped like a key (the message never repeats it).
    """
    # The secret is URL-safe base64 and may itself contain "_", so split twice at most.
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 2 * KEY_ID_BYTES or not parts[2]:
        raise Unauthorized("malformed API key; expected pk_<key_id>_<secret>")
    return parts[1], parts[2]


def authenticate(keys: KeyStore, token: str) -> ApiKeyRecord:
    """The key record of a presented key, if the key is valid and not revoked.

    Args:
        keys: where key records are kept.
        token: the key as the client sent it.

    Returns:
        The stored record (tenant and scopes) of the key.

    Raises:
        Unauthorized: the key is malformed, unknown, wrong or revoked.
    """
    key_id, secret = parse_key(token)
    record = keys.get_key(key_id)
    presented = hash_secret(secret)
    # compare_digest takes the same time wherever the hashes differ, so timing tells nothing.
    if record is None or not hmac.compare_digest(record.secret_hash, presented):
        raise Unauthorized("invalid API key")
    if record.revoked_at is not None:
        raise Unauthorized("API key revoked")
    return record


def has_scope(record: ApiKeyRecord, scope: Scope | str) -> bool:
    """Whether a key may do what `scope` allows (`admin` allows everything)."""
    granted = set(record.scopes)
    if Scope.ADMIN in granted or scope in granted:
        return True
    return any(s in granted for s in IMPLIED_BY.get(Scope(scope), ()))


def is_public(record: ApiKeyRecord) -> bool:
    """Whether a key is a public client key (limited to sessions the service issued)."""
    return Scope.PUBLIC in record.scopes


def require_scope(record: ApiKeyRecord, scope: Scope | str) -> None:
    """Check that a key has a scope.

    Raises:
        Forbidden: the key lacks the scope.
    """
    if not has_scope(record, scope):
        raise Forbidden(f"this API key lacks the {Scope(scope).value!r} scope")


class KeysMarker:
    """A file whose identity changes whenever a key is revoked or changed anywhere.

    Every process that caches key records (each service worker) looks at it with one `stat`
    per request and drops its cache when it changed, so a revocation made by the CLI or
    another worker takes effect on the very next request. The file lives in the data
    directory, which a deployment's machines share (as they share model artifacts).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def current(self) -> tuple[int, int] | None:
        """The marker's identity: (inode, mtime in ns), None when it does not exist."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (info.st_ino, info.st_mtime_ns)

    def bump(self) -> None:
        """Change the marker (a new file renamed over the old one: a new inode)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        temp.write_text(secrets.token_hex(8) + "\n", encoding="ascii")
        os.replace(temp, self.path)


class CachedKeys:
    """A `KeyStore` that remembers the records it looked up for `ttl_s` seconds.

    Every authenticated request looks its key up; without a cache that is a database query
    per request. With a `marker`, the whole cache is dropped whenever the marker changed (a
    revocation anywhere): a revoked key then fails on the next request. Without one, a key
    revoked elsewhere stops working within `ttl_s`; one revoked through this object, at once.
    """

    MAX_ENTRIES = 10_000

    def __init__(self, keys: KeyStore, ttl_s: float, marker: KeysMarker | None = None) -> None:
        self.keys = keys
        self.ttl_s = ttl_s
        self.marker = marker
        self._seen = marker.current() if marker is not None else None
        self._records: dict[str, tuple[ApiKeyRecord | None, float]] = {}

    def _check_marker(self) -> None:
        if self.marker is None:
            return
        now = self.marker.current()
        if now != self._seen:
            self._records = {}
            self._seen = now

    def cached(self, token: str) -> bool:
        """Whether the record of a presented key is in the cache (no lookup needed)."""
        try:
            key_id, _ = parse_key(token)
        except Unauthorized:
            return True  # malformed: rejected without any lookup
        self._check_marker()
        hit = self._records.get(key_id)
        return hit is not None and hit[1] > time.monotonic()

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        """See `KeyStore.get_key`; answered from the cache while fresh."""
        self._check_marker()
        now = time.monotonic()
        hit = self._records.get(key_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        record = self.keys.get_key(key_id)
        if len(self._records) >= self.MAX_ENTRIES:
            self._records.clear()
        self._records[key_id] = (record, now + self.ttl_s)
        return record

    def put_key(self, record: ApiKeyRecord) -> None:
        """See `KeyStore.put_key`."""
        self._records.pop(record.key_id, None)
        self.keys.put_key(record)

    def list_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        """See `KeyStore.list_keys` (never cached)."""
        return self.keys.list_keys(tenant)

    def revoke_key(self, key_id: str) -> bool:
        """See `KeyStore.revoke_key`; the cached record goes at once, and every other process
        drops its cache on its next request (the marker)."""
        self._records.pop(key_id, None)
        revoked = self.keys.revoke_key(key_id)
        if revoked and self.marker is not None:
            self.marker.bump()
            self._seen = self.marker.current()
        return revoked


class RateLimiter:
    """A token bucket per API key: `rate` requests a second on average, bursts of `burst`.

    Each worker process keeps its own buckets and enforces `rate / workers` of the limit
    (connections are dealt evenly between workers), so no shared store is asked per request.
    """

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key_id: str) -> None:
        """Spend one request of a key's allowance.

        Raises:
            RateLimited: the key is over its limit; the error says when to retry.
        """
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key_id] = (tokens, now)
            raise RateLimited(
                "too many requests with this API key", retry_after_s=(1.0 - tokens) / self.rate
            )
        if len(self._buckets) >= CachedKeys.MAX_ENTRIES and key_id not in self._buckets:
            self._buckets.clear()
        self._buckets[key_id] = (tokens - 1.0, now)
