"""Dictionary encoding of tenants, users, sessions, items and event types into integers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from sqlalchemy import Connection, select

from penchant.store.sql.tables import dictionary, tenants

_CHUNK = 500  # keeps every IN (...) list under SQLite's parameter limit
_MAX_CACHED = 4_000_000  # entries per tenant and kind before the cache starts over
#: Past this many cached entries per key looked up, `encode` asks the database instead.
_CACHE_PER_KEY = 64
#: New keys before PostgreSQL's statistics of the dictionary are refreshed (then each time
#: the table may have doubled).
_ANALYZE_MIN = 10_000

Codes = NDArray[np.int64]


def placeholder(conn: Connection) -> str:
    """The DBAPI parameter marker of a connection's driver."""
    return "?" if conn.dialect.name == "sqlite" else "%s"


def raw_cursor(conn: Connection) -> Any:
    """A DBAPI cursor on the same connection and transaction, for bulk statements."""
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    """Consecutive slices of at most `size` values."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


class Dictionary:
    """Maps external keys to integer codes, with a per-process cache.

    Codes of erased keys are deleted; every erasure bumps the tenant's epoch, and a writer
    that sees a new epoch inside its transaction drops its cached codes for that tenant.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[str, int] = {}
        self._epochs: dict[int, int] = {}
        # Per (tenant, kind): the known keys and their codes, as parallel arrays, so that a
        # chunk of keys is looked up in one vectorized set operation.
        self._codes: dict[tuple[int, int], tuple[pa.Array, NDArray[np.int64]]] = {}
        # Keys this process inserted since it last refreshed PostgreSQL's statistics, and
        # how many it had inserted before that (a lower bound of the table's size).
        self._grown = 0
        self._analyzed = 0

    def tenant(self, conn: Connection, tenant: str, *, create: bool) -> int | None:
        """The code of a tenant; with `create`, made on first use."""
        cached = self._tenants.get(tenant)
        if cached is not None:
            return cached
        row = conn.execute(select(tenants.c.ix).where(tenants.c.id == tenant)).first()
        if row is None:
            if not create:
                return None
            ph = placeholder(conn)
            cur = raw_cursor(conn)
            cur.execute(
                f"INSERT INTO tenants (id, epoch, created_at) VALUES ({ph}, 0, {ph}) "
                "ON CONFLICT (id) DO NOTHING",
                (tenant, int(time.time() * 1_000_000)),
            )
            row = conn.execute(select(tenants.c.ix).where(tenants.c.id == tenant)).first()
            assert row is not None
        with self._lock:
            self._tenants[tenant] = int(row[0])
        return int(row[0])

    def sync_epoch(self, conn: Connection, tenant_ix: int) -> int:
        """Drop cached codes of a tenant if an erasure happened since they were read.

        Returns:
            The tenant's epoch as this transaction sees it.
        """
        row = conn.execute(select(tenants.c.epoch).where(tenants.c.ix == tenant_ix)).first()
        epoch = int(row[0]) if row else 0
        if self._epochs.get(tenant_ix) != epoch:
            with self._lock:
                for key in [k for k in self._codes if k[0] == tenant_ix]:
                    del self._codes[key]
                self._epochs[tenant_ix] = epoch
        return epoch

    def bump_epoch(self, conn: Connection, tenant_ix: int) -> None:
        """Record that codes of this tenant were deleted."""
        conn.execute(
            tenants.update().where(tenants.c.ix == tenant_ix).values(epoch=tenants.c.epoch + 1)
        )
        with self._lock:
            for key in [k for k in self._codes if k[0] == tenant_ix]:
                del self._codes[key]
            self._epochs.pop(tenant_ix, None)

    def encode(self, conn: Connection, tenant_ix: int, kind: int, keys: pa.Array) -> Codes:
        """Codes of distinct keys, creating the missing ones (call inside a write transaction).

        Args:
            conn: the write transaction.
            tenant_ix: the tenant's code.
            kind: what the keys are (`KIND_USER`, ...).
            keys: distinct, non-null strings.

        Returns:
            One code per key, in order.
        """
        known = self._codes.get((tenant_ix, kind))
        if known is not None and len(known[1]) > _CACHE_PER_KEY * len(keys):
            # A lookup in the cache hashes all of it (pyarrow keeps no hash table between
            # calls): for a few keys against a large cache, the database's index is cheaper.
            names = keys.to_pylist()
            found = self._create(conn, tenant_ix, kind, names)
            return np.fromiter((found[k] for k in names), dtype=np.int64, count=len(names))
        codes = np.empty(len(keys), dtype=np.int64)
        if known is None:
            hit = np.zeros(len(keys), dtype=bool)
        else:
            positions = pc.index_in(keys, value_set=known[0])
            hit = positions.is_valid().to_numpy(zero_copy_only=False)
            codes[hit] = known[1][positions.drop_null().to_numpy()]
        if hit.all():
            return codes
        missing = keys.filter(pa.array(~hit))
        names = missing.to_pylist()
        found = self._create(conn, tenant_ix, kind, names)
        fresh = np.fromiter((found[k] for k in names), dtype=np.int64, count=len(names))
        codes[~hit] = fresh
        with self._lock:
            current = self._codes.get((tenant_ix, kind))
            if current is None or len(current[1]) + len(fresh) > _MAX_CACHED:
                self._codes[(tenant_ix, kind)] = (missing, fresh)
            elif current is known:
                self._codes[(tenant_ix, kind)] = (
                    pa.concat_arrays([current[0], missing]),
                    np.concatenate([current[1], fresh]),
                )
            # else: another thread grew the cache meanwhile; its entries are as good as ours.
        return codes

    def _create(
        self, conn: Connection, tenant_ix: int, kind: int, keys: list[str]
    ) -> dict[str, int]:
        """Every key's code, inserting the keys that are new.

        The codes of known keys are read first: most keys of a batch usually are (a known
        user's events, impressions of catalog items), and reading them costs a fraction of
        an insert that conflicts (which on PostgreSQL also draws a code from the sequence
        for nothing).
        """
        found = _known(conn, tenant_ix, kind, keys)
        if len(found) < len(keys):
            fresh, inserted = self._insert(
                conn, tenant_ix, kind, [k for k in keys if k not in found]
            )
            found.update(fresh)
            if conn.dialect.name == "postgresql":
                self._refresh_statistics(conn, inserted)
        return found

    def _refresh_statistics(self, conn: Connection, inserted: int) -> None:
        """ANALYZE the dictionary once it has grown a lot since this process last did.

        A table that was never analyzed looks empty to PostgreSQL's planner, which then
        checks the keys of `_known` one by one against every row of their kind instead of
        looking each up in the index: a bulk import into a new store slowed to 5,000
        events/s where autovacuum had not run (it is off on some servers, and a minute
        late on others).

        It runs inside the write transaction, so that the statistics count the keys this
        transaction inserted, and it never waits: ANALYZE's table lock is held until the
        commit, and a writer that waited for another's while that one waited for its keys
        would deadlock. When the lock is taken (another writer's ANALYZE, autovacuum), this
        writer skips it and tries again at its next new keys.
        """
        with self._lock:
            self._grown += inserted
            if self._grown < max(_ANALYZE_MIN, self._analyzed):
                return
            grown, self._grown = self._grown, 0
        if _analyze_unless_locked(conn):
            with self._lock:
                self._analyzed += grown
        else:
            with self._lock:
                self._grown += grown

    @staticmethod
    def _insert(
        conn: Connection, tenant_ix: int, kind: int, keys: list[str]
    ) -> tuple[dict[str, int], int]:
        """Insert keys that may be new and read back every key's code, in set operations.

        Returns:
            Every key's code, and how many keys this call inserted.
        """
        cur = raw_cursor(conn)
        if conn.dialect.name == "postgresql":
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS penchant_keys (key text NOT NULL) "
                "ON COMMIT DELETE ROWS"
            )
            # One transaction encodes several kinds: start each from an empty table.
            cur.execute("DELETE FROM penchant_keys")
            with cur.copy("COPY penchant_keys (key) FROM STDIN") as copy:
                for key in keys:
                    copy.write_row((key,))
        else:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS penchant_keys (key TEXT NOT NULL)")
            cur.execute("DELETE FROM penchant_keys")
            cur.executemany("INSERT INTO penchant_keys (key) VALUES (?)", [(k,) for k in keys])
        ph = placeholder(conn)
        # "WHERE true" resolves SQLite's parsing ambiguity between a join and ON CONFLICT.
        cur.execute(
            f"INSERT INTO dictionary (tenant_ix, kind, key) SELECT {ph}, {ph}, key "
            "FROM penchant_keys WHERE true ON CONFLICT (tenant_ix, kind, key) DO NOTHING",
            (tenant_ix, kind),
        )
        inserted = max(cur.rowcount, 0)
        cur.execute(
            "SELECT d.key, d.ix FROM penchant_keys t JOIN dictionary d "
            f"ON d.tenant_ix = {ph} AND d.kind = {ph} AND d.key = t.key",
            (tenant_ix, kind),
        )
        found = {str(key): int(ix) for key, ix in cur.fetchall()}
        cur.execute("DELETE FROM penchant_keys")
        return found, inserted

    def lookup(self, conn: Connection, tenant_ix: int, kind: int, key: str) -> int | None:
        """The code of one key, or None if it was never stored."""
        found = self._select(conn, tenant_ix, kind, [key])
        return found.get(key)

    def decode(self, conn: Connection, codes: Iterable[int]) -> dict[int, str]:
        """Keys of codes (codes are unique across tenants and kinds)."""
        wanted = sorted(set(codes))
        out: dict[int, str] = {}
        for part in chunks(wanted):
            rows = conn.execute(
                select(dictionary.c.ix, dictionary.c.key).where(dictionary.c.ix.in_(part))
            )
            out.update({int(ix): str(key) for ix, key in rows})
        return out

    def delete(self, conn: Connection, code: int) -> None:
        """Forget one code (its key is erased)."""
        conn.execute(dictionary.delete().where(dictionary.c.ix == code))

    def _select(
        self, conn: Connection, tenant_ix: int, kind: int, keys: Sequence[str]
    ) -> dict[str, int]:
        out: dict[str, int] = {}
        for part in chunks(keys):
            rows = conn.execute(
                select(dictionary.c.key, dictionary.c.ix).where(
                    dictionary.c.tenant_ix == tenant_ix,
                    dictionary.c.kind == kind,
                    dictionary.c.key.in_(part),
                )
            )
            out.update({str(key): int(ix) for key, ix in rows})
        return out


def _known(conn: Connection, tenant_ix: int, kind: int, keys: Sequence[str]) -> dict[str, int]:
    """The codes of those keys that are stored, read through the driver's cursor (on many
    keys, SQLAlchemy's per-parameter and per-row work costs more than the query)."""
    ph = placeholder(conn)
    cur = raw_cursor(conn)
    out: dict[str, int] = {}
    for part in chunks(keys):
        cur.execute(
            f"SELECT key, ix FROM dictionary WHERE tenant_ix = {ph} AND kind = {ph} "
            f"AND key IN ({', '.join([ph] * len(part))})",
            (tenant_ix, kind, *part),
        )
        out.update({str(key): int(ix) for key, ix in cur.fetchall()})
    return out


def _analyze_unless_locked(conn: Connection) -> bool:
    """ANALYZE the dictionary inside the open PostgreSQL transaction; False, with the
    transaction unharmed, when its lock is not free at once."""
    from psycopg.errors import LockNotAvailable

    cur = raw_cursor(conn)
    cur.execute("SHOW lock_timeout")
    previous = cur.fetchone()[0]
    cur.execute("SAVEPOINT penchant_analyze")
    try:
        cur.execute("SET LOCAL lock_timeout = '10ms'")
        cur.execute("ANALYZE dictionary")
    except LockNotAvailable:
        cur.execute("ROLLBACK TO SAVEPOINT penchant_analyze")  # undoes the timeout too
        return False
    cur.execute("RELEASE SAVEPOINT penchant_analyze")
    cur.execute("SELECT set_config('lock_timeout', %s, true)", (previous,))
    return True
