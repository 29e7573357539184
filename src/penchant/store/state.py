"""Online state (recent events, seen sets, counters, bandit state): in-process or Redis."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from penchant.errors import ConfigError, StoreError

#: A vector of float64 (what `add_floats` adds).
FloatVector = np.ndarray[Any, np.dtype[np.float64]]

# Adds a sparse vector to the float64 vector at KEYS[1] in one atomic step: ARGV[1] is the
# vector's length in floats, ARGV[2] the changed cells' indices (little-endian uint32s) and
# ARGV[3] their deltas (little-endian float64s). Only the changed cells are read and written
# (a bandit's pull touches a few dozen of hundreds), and Lua numbers are doubles, so the sums
# are exactly those numpy would make.
_ADD_FLOATS = """
local size = 8 * tonumber(ARGV[1])
local current = redis.call('GET', KEYS[1])
if current and #current ~= size then
  return redis.error_reply('length ' .. #current .. ' is not ' .. size)
end
if not current then
  redis.call('SET', KEYS[1], string.rep('\\0', size))
end
local cells, deltas = ARGV[2], ARGV[3]
for j = 0, #deltas / 8 - 1 do
  local at = 8 * struct.unpack('<I4', cells, 4 * j + 1)
  local d = struct.unpack('<d', deltas, 8 * j + 1)
  if current then d = d + struct.unpack('<d', current, at + 1) end
  redis.call('SETRANGE', KEYS[1], at, struct.pack('<d', d))
end
return 1
"""


def _floats(deltas: FloatVector) -> bytes:
    return np.ascontiguousarray(deltas, dtype="<f8").tobytes()


def _cells(deltas: FloatVector) -> list[bytes | int]:
    """`_ADD_FLOATS`'s arguments for a dense vector: its length and its non-zero cells."""
    dense = np.ascontiguousarray(deltas, dtype="<f8").ravel()
    changed = np.flatnonzero(dense)
    return [len(dense), changed.astype("<u4").tobytes(), dense[changed].tobytes()]


@dataclass(frozen=True, slots=True)
class AddFloats:
    """A write for `StateStore.write_many`: `add_floats(key, deltas)`."""

    key: str
    deltas: FloatVector


@dataclass(frozen=True, slots=True)
class SetValue:
    """A write for `StateStore.write_many`: `set(key, value, ttl_s)`."""

    key: str
    value: bytes
    ttl_s: float | None = None


#: One of the writes `StateStore.write_many` applies.
Write = AddFloats | SetValue


class StateStore(Protocol):
    """Small, fast, per-tenant key-value state. Values are bytes; lists hold strings."""

    def get(self, tenant: str, key: str) -> bytes | None:
        """The value of a key, or None if absent or expired."""
        ...

    def set(self, tenant: str, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Set a value, optionally expiring after `ttl_s` seconds."""
        ...

    def incr(self, tenant: str, key: str, amount: int = 1) -> int:
        """Add to an integer counter (created at 0) and return the new value."""
        ...

    def push_recent(
        self, tenant: str, key: str, value: str, maxlen: int, ttl_s: float | None = None
    ) -> None:
        """Prepend to a bounded list that keeps the newest `maxlen` values.

        With `ttl_s`, the whole list expires `ttl_s` seconds after its latest push.
        """
        ...

    def recent(self, tenant: str, key: str, n: int) -> list[str]:
        """The newest `n` values of a list, newest first."""
        ...

    def get_many(self, tenant: str, keys: Sequence[str]) -> list[bytes | None]:
        """The values of several keys at once (one round trip), None where absent."""
        ...

    def add_floats(self, tenant: str, key: str, deltas: FloatVector) -> None:
        """Add a float64 vector to the one stored at `key` (zeros when absent), atomically.

        The stored value is the vector's little-endian float64 bytes, so `get` and
        `get_many` read it back with `numpy.frombuffer(value, "<f8")`. Several writers adding
        to the same key never lose an addition.

        Raises:
            StoreError: the key holds a value of another length.
        """
        ...

    def write_many(self, tenant: str, writes: Sequence[Write]) -> None:
        """Apply several writes in order, in one round trip.

        Each write is atomic on its own, as `add_floats` and `set` are; the batch is not a
        transaction (another client may read between two of its writes).

        Raises:
            StoreError: an `AddFloats` met a vector of another length (the other writes
                were applied).
        """
        ...

    def delete(self, tenant: str, *keys: str) -> int:
        """Delete keys; return how many existed."""
        ...

    def delete_prefix(self, tenant: str, prefix: str) -> int:
        """Delete every key of a tenant that starts with `prefix` (used by erasure)."""
        ...


class MemoryState:
    """`StateStore` in this process: the embedded default; lost on restart by design."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], tuple[Any, float | None]] = {}

    def _live(self, k: tuple[str, str]) -> Any:
        entry = self._values.get(k)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= time.monotonic():
            del self._values[k]
            return None
        return value

    def get(self, tenant: str, key: str) -> bytes | None:
        """See `StateStore.get`."""
        with self._lock:
            value = self._live((tenant, key))
        if value is None or isinstance(value, bytes):
            return value
        return str(value).encode()

    def set(self, tenant: str, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """See `StateStore.set`."""
        expires = time.monotonic() + ttl_s if ttl_s is not None else None
        with self._lock:
            self._values[(tenant, key)] = (bytes(value), expires)

    def incr(self, tenant: str, key: str, amount: int = 1) -> int:
        """See `StateStore.incr`."""
        with self._lock:
            current = self._live((tenant, key))
            try:
                value = int(current or 0) + amount
            except ValueError as exc:
                raise StoreError(f"state key {key!r} does not hold an integer") from exc
            expires = self._values.get((tenant, key), (None, None))[1]
            self._values[(tenant, key)] = (value, expires)
            return value

    def push_recent(
        self, tenant: str, key: str, value: str, maxlen: int, ttl_s: float | None = None
    ) -> None:
        """See `StateStore.push_recent`."""
        expires = time.monotonic() + ttl_s if ttl_s is not None else None
        with self._lock:
            current = self._live((tenant, key))
            if not isinstance(current, deque) or current.maxlen != maxlen:
                current = deque(current or (), maxlen=maxlen)
            current.appendleft(value)
            self._values[(tenant, key)] = (current, expires)

    def recent(self, tenant: str, key: str, n: int) -> list[str]:
        """See `StateStore.recent`."""
        with self._lock:
            current = self._live((tenant, key))
            return list(current)[:n] if isinstance(current, deque) else []

    def get_many(self, tenant: str, keys: Sequence[str]) -> list[bytes | None]:
        """See `StateStore.get_many`."""
        return [self.get(tenant, k) for k in keys]

    def add_floats(self, tenant: str, key: str, deltas: FloatVector) -> None:
        """See `StateStore.add_floats`."""
        add = np.frombuffer(_floats(deltas), dtype="<f8")
        with self._lock:
            current = self._live((tenant, key))
            if current is None:
                value = add
            else:
                now = np.frombuffer(current, dtype="<f8") if isinstance(current, bytes) else None
                if now is None or len(now) != len(add):
                    raise StoreError(f"state key {key!r} holds a vector of another length")
                value = now + add
            expires = self._values.get((tenant, key), (None, None))[1]
            self._values[(tenant, key)] = (value.tobytes(), expires)

    def write_many(self, tenant: str, writes: Sequence[Write]) -> None:
        """See `StateStore.write_many`."""
        refused: StoreError | None = None
        for write in writes:
            if isinstance(write, SetValue):
                self.set(tenant, write.key, write.value, write.ttl_s)
                continue
            try:
                self.add_floats(tenant, write.key, write.deltas)
            except StoreError as exc:
                refused = refused or exc
        if refused is not None:
            raise refused

    def delete(self, tenant: str, *keys: str) -> int:
        """See `StateStore.delete`."""
        with self._lock:
            found = [k for k in keys if self._live((tenant, k)) is not None]
            for k in found:
                del self._values[(tenant, k)]
            return len(found)

    def delete_prefix(self, tenant: str, prefix: str) -> int:
        """See `StateStore.delete_prefix`."""
        with self._lock:
            doomed = [k for k in self._values if k[0] == tenant and k[1].startswith(prefix)]
            for k in doomed:
                del self._values[k]
            return len(doomed)


class RedisState:
    """`StateStore` on Redis, shared by every worker. Keys are `penchant:{tenant}:{key}`."""

    def __init__(self, url: str) -> None:
        import redis

        self._redis: Any = redis.Redis.from_url(url)
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            raise StoreError(f"cannot reach Redis at {url}: {exc}") from exc
        self._add_floats: Any = self._redis.register_script(_ADD_FLOATS)

    @staticmethod
    def _key(tenant: str, key: str) -> str:
        return f"penchant:{tenant}:{key}"

    def get(self, tenant: str, key: str) -> bytes | None:
        """See `StateStore.get`."""
        value = self._redis.get(self._key(tenant, key))
        return bytes(value) if value is not None else None

    def set(self, tenant: str, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """See `StateStore.set`."""
        px = max(1, int(ttl_s * 1000)) if ttl_s is not None else None
        self._redis.set(self._key(tenant, key), value, px=px)

    def incr(self, tenant: str, key: str, amount: int = 1) -> int:
        """See `StateStore.incr`."""
        return int(self._redis.incrby(self._key(tenant, key), amount))

    def push_recent(
        self, tenant: str, key: str, value: str, maxlen: int, ttl_s: float | None = None
    ) -> None:
        """See `StateStore.push_recent`; push, trim and expiry run as one transaction."""
        name = self._key(tenant, key)
        pipe = self._redis.pipeline(transaction=True)
        pipe.lpush(name, value)
        pipe.ltrim(name, 0, maxlen - 1)
        if ttl_s is not None:
            pipe.pexpire(name, max(1, int(ttl_s * 1000)))
        pipe.execute()

    def recent(self, tenant: str, key: str, n: int) -> list[str]:
        """See `StateStore.recent`."""
        return [v.decode() for v in self._redis.lrange(self._key(tenant, key), 0, n - 1)]

    def get_many(self, tenant: str, keys: Sequence[str]) -> list[bytes | None]:
        """See `StateStore.get_many`."""
        if not keys:
            return []
        values = self._redis.mget([self._key(tenant, k) for k in keys])
        return [bytes(v) if v is not None else None for v in values]

    def add_floats(self, tenant: str, key: str, deltas: FloatVector) -> None:
        """See `StateStore.add_floats`: one Lua script, so concurrent adds all count."""
        import redis

        try:
            self._add_floats(keys=[self._key(tenant, key)], args=_cells(deltas))
        except redis.ResponseError as exc:
            raise StoreError(f"state key {key!r} holds a vector of another length") from exc

    def write_many(self, tenant: str, writes: Sequence[Write]) -> None:
        """See `StateStore.write_many`: one pipeline, not a transaction.

        The additions go as EVAL with the script's text rather than EVALSHA: a pipeline
        using a registered script first asks Redis whether it knows the script, a second
        round trip.
        """
        import redis

        pipe = self._redis.pipeline(transaction=False)
        for write in writes:
            name = self._key(tenant, write.key)
            if isinstance(write, SetValue):
                px = max(1, int(write.ttl_s * 1000)) if write.ttl_s is not None else None
                pipe.set(name, write.value, px=px)
            else:
                pipe.eval(_ADD_FLOATS, 1, name, *_cells(write.deltas))
        answers = pipe.execute(raise_on_error=False)
        for write, answer in zip(writes, answers, strict=True):
            if isinstance(answer, redis.ResponseError):
                raise StoreError(f"state key {write.key!r} holds a vector of another length")

    def delete(self, tenant: str, *keys: str) -> int:
        """See `StateStore.delete`."""
        if not keys:
            return 0
        return int(self._redis.delete(*(self._key(tenant, k) for k in keys)))

    def delete_prefix(self, tenant: str, prefix: str) -> int:
        """See `StateStore.delete_prefix`."""
        pattern = _glob_escape(self._key(tenant, prefix)) + "*"
        deleted = 0
        batch: list[bytes] = []
        for name in self._redis.scan_iter(match=pattern, count=1000):
            batch.append(name)
            if len(batch) >= 1000:
                deleted += int(self._redis.delete(*batch))
                batch = []
        if batch:
            deleted += int(self._redis.delete(*batch))
        return deleted


def _glob_escape(text: str) -> str:
    """Escape Redis glob characters so a tenant or prefix matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def open_state(url: str) -> StateStore:
    """Open online state by URL: `memory://` or `redis://host:port/db`.

    Raises:
        ConfigError: unsupported URL.
        StoreError: Redis cannot be reached.
    """
    if url.startswith("memory:"):
        return MemoryState()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisState(url)
    raise ConfigError(
        f"unsupported state URL {url!r}; use memory:// or redis://", field="state.url"
    )
