"""Tombstones of erased people: keyed hashes that stop a later write from re-creating them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from sqlalchemy import Connection, select

from penchant.store.sql.tables import erasures

#: The keyed hash of a user id in a tenant: `(tenant, user_id) -> hex`.
TombstoneHash = Callable[[str, str], str]


class Tombstones:
    """The active tombstones of every tenant, cached per tenant until its epoch changes.

    Every erasure (and every lifted tombstone) bumps the tenant's epoch, so a writer that
    has synced the epoch inside its transaction sees exactly the tombstones that exist.
    Without a hash function (a store opened without a privacy secret) nothing is checked.
    """

    def __init__(self, hash_id: TombstoneHash | None) -> None:
        self.hash_id = hash_id
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[int, frozenset[str]]] = {}

    def of(self, tenant: str, user_id: str) -> str | None:
        """The tombstone an erasure of this user leaves (None without a hash function)."""
        return None if self.hash_id is None else self.hash_id(tenant, user_id)

    def any(self, conn: Connection, tenant_ix: int, epoch: int) -> bool:
        """Whether the tenant has any active tombstone (cached per epoch: usually free)."""
        return self.hash_id is not None and bool(self._active(conn, tenant_ix, epoch))

    def erased(
        self, conn: Connection, tenant: str, tenant_ix: int, epoch: int, users: Iterable[str]
    ) -> set[str]:
        """Which of these user ids were erased (and not reinstated) in the tenant."""
        if self.hash_id is None:
            return set()
        active = self._active(conn, tenant_ix, epoch)
        if not active:
            return set()
        return {u for u in users if self.hash_id(tenant, u) in active}

    def _active(self, conn: Connection, tenant_ix: int, epoch: int) -> frozenset[str]:
        cached = self._cache.get(tenant_ix)
        if cached is not None and cached[0] == epoch:
            return cached[1]
        rows = conn.execute(
            select(erasures.c.tombstone).where(
                erasures.c.tenant_ix == tenant_ix, erasures.c.lifted_at.is_(None)
            )
        )
        active = frozenset(str(r[0]) for r in rows)
        with self._lock:
            self._cache[tenant_ix] = (epoch, active)
        return active
