"""The audit log: who did what to keys, consent, exports and erasures, when, and how it ended.

Entries never hold payloads, and a person's id only as a keyed hash (`user:<hash>`), so the
log itself needs no erasure and can be kept as long as the law asks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from penchant.privacy.hashing import Hasher
from penchant.schema.common import from_micros
from penchant.store.sql.engine import read_tx, write_tx
from penchant.store.sql.tables import audit_log


@dataclass(frozen=True)
class AuditEntry:
    """One audited operation."""

    at: datetime
    tenant: str
    actor: str
    action: str
    target: str
    outcome: str


class AuditLog:
    """Appends audit entries to the store's `audit_log` table."""

    def __init__(self, engine: Engine, hasher: Hasher) -> None:
        self._engine = engine
        self._hasher = hasher

    def user(self, tenant: str, user_id: str) -> str:
        """How a person appears in the log: a keyed hash, never the id."""
        return f"user:{self._hasher.id(tenant, user_id, purpose='audit')[:32]}"

    def record(self, tenant: str, actor: str, action: str, target: str, outcome: str) -> None:
        """Append one entry (durable on return)."""
        with write_tx(self._engine) as conn:
            conn.execute(
                audit_log.insert().values(
                    at=int(time.time() * 1_000_000),
                    tenant=tenant,
                    actor=actor,
                    action=action,
                    target=target,
                    outcome=outcome,
                )
            )

    def entries(self, tenant: str | None = None, *, limit: int = 1000) -> list[AuditEntry]:
        """The newest entries, newest first."""
        stmt = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
        if tenant is not None:
            stmt = stmt.where(audit_log.c.tenant == tenant)
        with read_tx(self._engine) as conn:
            rows = conn.execute(stmt).all()
        return [
            AuditEntry(
                at=from_micros(int(r.at)),
                tenant=str(r.tenant),
                actor=str(r.actor),
                action=str(r.action),
                target=str(r.target),
                outcome=str(r.outcome),
            )
            for r in rows
        ]
