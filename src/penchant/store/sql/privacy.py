"""What erasure needs from the SQL store: one transaction that removes a person's rows, and the
erasure jobs with their tombstones."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, select

from penchant.schema.common import from_micros, to_micros
from penchant.store.sql.dictionary import Dictionary
from penchant.store.sql.engine import read_tx, write_tx
from penchant.store.sql.event_users import delete_user_events
from penchant.store.sql.tables import (
    KIND_SESSION,
    KIND_USER,
    consents,
    dictionary,
    erasures,
    user_controls,
    users,
)
from penchant.store.sql.tombstones import Tombstones

#: Tables keyed by (tenant_ix, user_id) that hold nothing but one person's data.
_PER_USER: tuple[tuple[str, Table], ...] = (
    ("profile", users),
    ("consents", consents),
    ("controls", user_controls),
)
#: What a profile reset keeps of those: the catalog record and the person's choices.
_KEPT_ON_RESET = frozenset({"profile", "consents", "controls"})


@dataclass(frozen=True)
class ErasureRecord:
    """An erasure job as stored: no user id, only its tombstone.

    Attributes:
        job_id: the job's id.
        tenant: its tenant.
        actor: who asked (an API key id, or `cli`).
        requested_at: when it was asked for.
        erased_at: when every eraser had run (None while running or failed).
        counts: what each eraser removed, by `eraser.part` name.
        rebuild_due_at: when the retraining that rebuilds item-side structures is due.
        rebuilt_at: when a retraining without the person's data was activated.
        rebuilt_version: the model version of that retraining.
        lifted_at: when the tombstone was lifted (the person may come back).
        tombstone: the keyed hash of the person's id ("" when erased without a secret).
    """

    job_id: str
    tenant: str
    actor: str
    requested_at: datetime
    erased_at: datetime | None
    counts: dict[str, int] = field(default_factory=dict)
    rebuild_due_at: datetime | None = None
    rebuilt_at: datetime | None = None
    rebuilt_version: str | None = None
    lifted_at: datetime | None = None
    tombstone: str = ""


@dataclass(frozen=True)
class ErasedRows:
    """What `SqlPrivacyStore.erase_user` removed.

    Attributes:
        counts: rows removed per part (`events`, `sessions`, `profile`, `consents`, ...).
        sessions: the ids of the sessions this person used (their online state is
            erased too).
    """

    counts: dict[str, int]
    sessions: list[str]


def _now() -> int:
    return int(time.time() * 1_000_000)


class SqlPrivacyStore:
    """Erasure jobs, tombstones and the one-transaction removal of a person's rows."""

    def __init__(self, engine: Engine, codes: Dictionary, tombstones: Tombstones) -> None:
        self._engine = engine
        self._codes = codes
        self.tombstones = tombstones

    def erase_user(
        self,
        tenant: str,
        user_id: str,
        *,
        job_id: str,
        actor: str,
        rebuild_due_at: datetime,
        reset: bool = False,
    ) -> ErasedRows:
        """Remove every row of a person in one transaction, and leave a tombstone.

        Events, the user's dictionary code, the sessions they used, the profile, the
        consent ledger and their controls go; the job is recorded with the tombstone only.

        Args:
            reset: a profile reset instead: the catalog record, the consent ledger and the
                controls stay, and the job's tombstone is lifted at once, so the person's
                later writes are accepted (it is still recorded, for the rebuild to lift the
                serving guard by).

        Raises:
            ConfigError: (from the caller's hash function) no privacy secret.
        """
        tombstone = self.tombstones.of(tenant, user_id) or ""
        with write_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=True)
            assert tenant_ix is not None
            counts, sessions = _erase_events(conn, self._codes, tenant_ix, user_id)
            for part, table in _PER_USER:
                if reset and part in _KEPT_ON_RESET:
                    continue
                result = conn.execute(
                    delete(table).where(table.c.tenant_ix == tenant_ix, table.c.user_id == user_id)
                )
                counts[part] = int(result.rowcount)
            conn.execute(
                erasures.insert().values(
                    job_id=job_id,
                    tenant_ix=tenant_ix,
                    tombstone=tombstone,
                    actor=actor,
                    requested_at=_now(),
                    counts=json.dumps(counts, sort_keys=True),
                    rebuild_due_at=to_micros(rebuild_due_at),
                    lifted_at=_now() if reset else None,
                )
            )
            self._codes.bump_epoch(conn, tenant_ix)
        self._checkpoint()
        return ErasedRows(counts=counts, sessions=sessions)

    def _checkpoint(self) -> None:
        """On SQLite, move the WAL into the file (whose deleted pages secure_delete zeroed)
        and truncate it, so the erased rows' old page images leave the WAL too. A reader
        holding an old snapshot can keep the WAL alive; the next erasure retries."""
        if self._engine.dialect.name != "sqlite":
            return
        with self._engine.connect() as conn:
            raw = conn.connection.dbapi_connection  # autocommit: no BEGIN around the pragma
            assert raw is not None
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def finish(self, job_id: str, counts: dict[str, int]) -> None:
        """Record that every eraser of a job has run, with the counts of all of them."""
        with write_tx(self._engine) as conn:
            conn.execute(
                erasures.update()
                .where(erasures.c.job_id == job_id)
                .values(erased_at=_now(), counts=json.dumps(counts, sort_keys=True))
            )

    def is_erased(self, tenant: str, user_ids: Sequence[str]) -> set[str]:
        """Which of these ids have an active tombstone in the tenant."""
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return set()
            epoch = self._codes.sync_epoch(conn, tenant_ix)
            return self.tombstones.erased(conn, tenant, tenant_ix, epoch, user_ids)

    def lift(self, tenant: str, user_id: str) -> int:
        """Lift a person's tombstones so that they can be created again; return how many."""
        tombstone = self.tombstones.of(tenant, user_id)
        if tombstone is None:
            return 0
        with write_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return 0
            result = conn.execute(
                erasures.update()
                .where(
                    erasures.c.tenant_ix == tenant_ix,
                    erasures.c.tombstone == tombstone,
                    erasures.c.lifted_at.is_(None),
                )
                .values(lifted_at=_now())
            )
            if result.rowcount:
                self._codes.bump_epoch(conn, tenant_ix)
            return int(result.rowcount)

    def job(self, tenant: str, job_id: str) -> ErasureRecord | None:
        """An erasure job of the tenant, or None."""
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return None
            row = conn.execute(
                select(erasures).where(
                    erasures.c.tenant_ix == tenant_ix, erasures.c.job_id == job_id
                )
            ).first()
        return None if row is None else _record(tenant, row)

    def pending_rebuilds(self, tenant: str) -> list[ErasureRecord]:
        """The tenant's finished erasures whose retraining has not happened yet, oldest first."""
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return []
            rows = conn.execute(
                select(erasures)
                .where(
                    erasures.c.tenant_ix == tenant_ix,
                    erasures.c.rebuilt_at.is_(None),
                    erasures.c.erased_at.is_not(None),
                )
                .order_by(erasures.c.requested_at)
            ).all()
        return [_record(tenant, r) for r in rows]

    def rebuilt_since(self, tenant: str, since: datetime) -> list[ErasureRecord]:
        """The tenant's erasures whose retraining was served at or after `since`."""
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return []
            rows = conn.execute(
                select(erasures).where(
                    erasures.c.tenant_ix == tenant_ix,
                    erasures.c.rebuilt_at >= to_micros(since),
                )
            ).all()
        return [_record(tenant, r) for r in rows]

    def mark_rebuilt(self, tenant: str, job_ids: Sequence[str], version: str) -> int:
        """Record that a retraining without these erasures' data is being served."""
        if not job_ids:
            return 0
        with write_tx(self._engine) as conn:
            result = conn.execute(
                erasures.update()
                .where(erasures.c.job_id.in_(list(job_ids)), erasures.c.rebuilt_at.is_(None))
                .values(rebuilt_at=_now(), rebuilt_version=version)
            )
            return int(result.rowcount)


def _erase_events(
    conn: Connection, codes: Dictionary, tenant_ix: int, user_id: str
) -> tuple[dict[str, int], list[str]]:
    """Delete a user's events, their code and the ids of the sessions they used."""
    counts = {"events": 0, "sessions": 0}
    code = codes.lookup(conn, tenant_ix, KIND_USER, user_id)
    if code is None:
        return counts, []
    # The rows are found beside the log, go, and say which sessions they had.
    deleted = delete_user_events(conn, tenant_ix, code)
    counts["events"] = len(deleted)
    session_codes = sorted({s for s in deleted if s is not None})
    codes.delete(conn, code)
    # A session id the person used identifies them: it goes, even where anonymous events
    # (before they signed in) share it; those keep their rows without a session. (Checking
    # whether others use it would need an index on events by session, which costs bulk
    # import about a third of its speed.)
    names = codes.decode(conn, session_codes)
    for s in session_codes:
        conn.execute(
            delete(dictionary).where(dictionary.c.ix == s, dictionary.c.kind == KIND_SESSION)
        )
    counts["sessions"] = len(session_codes)
    return counts, [names[s] for s in session_codes if s in names]


def _record(tenant: str, row: Any) -> ErasureRecord:
    def when(value: Any) -> datetime | None:
        return None if value is None else from_micros(int(value))

    requested = when(row.requested_at)
    assert requested is not None
    return ErasureRecord(
        job_id=str(row.job_id),
        tenant=tenant,
        actor=str(row.actor),
        requested_at=requested,
        erased_at=when(row.erased_at),
        counts={str(k): int(v) for k, v in json.loads(row.counts).items()},
        rebuild_due_at=when(row.rebuild_due_at),
        rebuilt_at=when(row.rebuilt_at),
        rebuilt_version=None if row.rebuilt_version is None else str(row.rebuilt_version),
        lifted_at=when(row.lifted_at),
        tombstone=str(row.tombstone),
    )
