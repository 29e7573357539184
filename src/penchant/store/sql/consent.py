"""The consent ledger and the user controls in SQL: appended, read per person or per tenant.

The ledger (`consents`) is append-only: a change of mind is a new row, and a person's current
answer for a purpose is their newest row for it. Controls (`user_controls`) are a set per
person: what they asked not to see. Both are a person's data: erasure deletes them, a
profile reset keeps them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from penchant.errors import Erased
from penchant.schema.common import from_micros, to_micros
from penchant.schema.consent import ControlKind
from penchant.store.sql.dictionary import Dictionary
from penchant.store.sql.engine import read_tx, write_tx
from penchant.store.sql.tables import consents, user_controls
from penchant.store.sql.tombstones import Tombstones
from penchant.types import Purpose


@dataclass(frozen=True)
class ConsentRecord:
    """One row of the ledger: a person's answer for one purpose.

    Attributes:
        purpose: the purpose answered.
        granted: the answer.
        version: the version of the text the person answered (the app's naming).
        source: where they answered (a banner, the settings page, an import...).
        at: when it was recorded: the store's clock when not given (an import of another
            instance's ledger passes the original time; the ledger's order stays the order
            rows were appended in).
    """

    purpose: Purpose
    granted: bool
    version: str
    source: str
    at: datetime | None = None


@dataclass(frozen=True)
class Control:
    """Something a person asked not to see.

    Attributes:
        kind: an item ("not interested"), a category or a provider (muted).
        value: the item, category or provider id.
        at: when it was recorded: the store's clock when not given.
    """

    kind: ControlKind
    value: str
    at: datetime | None = None


@dataclass(frozen=True)
class PersonChoices:
    """A person's current answers (newest per purpose) and controls, oldest control first."""

    consent: dict[Purpose, ConsentRecord]
    controls: list[Control]


def _now() -> int:
    return int(time.time() * 1_000_000)


def _record(row: Any) -> ConsentRecord:
    return ConsentRecord(
        purpose=Purpose(row.purpose),
        granted=bool(row.granted),
        version=str(row.version),
        source=str(row.source),
        at=from_micros(int(row.at)),
    )


def _control(row: Any) -> Control:
    return Control(kind=ControlKind(row.kind), value=str(row.value), at=from_micros(int(row.at)))


class SqlConsentStore:
    """The consent ledger and the user controls, over SQLite or PostgreSQL."""

    def __init__(self, engine: Engine, codes: Dictionary, tombstones: Tombstones) -> None:
        self._engine = engine
        self._codes = codes
        self._tombstones = tombstones

    def record(self, tenant: str, user_id: str, answers: Sequence[ConsentRecord]) -> None:
        """Append answers to a person's ledger, in order (at the current time unless given).

        Raises:
            Erased: the person was erased (a write must not re-create them).
        """
        if not answers:
            return
        now = _now()
        with write_tx(self._engine) as conn:
            tenant_ix = self._writable(conn, tenant, user_id)
            conn.execute(
                consents.insert(),
                [
                    {
                        "tenant_ix": tenant_ix,
                        "user_id": user_id,
                        "purpose": str(a.purpose),
                        "granted": a.granted,
                        "version": a.version,
                        "source": a.source,
                        "at": now if a.at is None else to_micros(a.at),
                    }
                    for a in answers
                ],
            )

    def history(self, tenant: str, user_id: str) -> list[ConsentRecord]:
        """A person's ledger, oldest first."""
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return []
            rows = conn.execute(
                select(consents)
                .where(consents.c.tenant_ix == tenant_ix, consents.c.user_id == user_id)
                .order_by(consents.c.seq)
            ).all()
        return [_record(r) for r in rows]

    def choices(self, tenant: str, user_id: str) -> PersonChoices:
        """A person's current answers and controls, read in one snapshot."""
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return PersonChoices({}, [])
            found = self._choices(conn, tenant_ix, user_id)
        return found.get(user_id, PersonChoices({}, []))

    def everyone(self, tenant: str) -> dict[str, PersonChoices]:
        """The current answers and controls of every person who has any, by user id."""
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            return {} if tenant_ix is None else self._choices(conn, tenant_ix, None)

    def _choices(
        self, conn: Connection, tenant_ix: int, user_id: str | None
    ) -> dict[str, PersonChoices]:
        ledger = select(consents).where(consents.c.tenant_ix == tenant_ix)
        chosen = select(user_controls).where(user_controls.c.tenant_ix == tenant_ix)
        if user_id is not None:
            ledger = ledger.where(consents.c.user_id == user_id)
            chosen = chosen.where(user_controls.c.user_id == user_id)
        out: dict[str, PersonChoices] = {}
        for row in conn.execute(ledger.order_by(consents.c.seq)):
            person = out.setdefault(str(row.user_id), PersonChoices({}, []))
            record = _record(row)
            person.consent[record.purpose] = record  # the newest answer wins
        order = (user_controls.c.at, user_controls.c.kind, user_controls.c.value)
        for row in conn.execute(chosen.order_by(*order)):
            out.setdefault(str(row.user_id), PersonChoices({}, [])).controls.append(_control(row))
        return out

    def answers(self, tenant: str, purpose: Purpose) -> dict[str, bool]:
        """Every person's current answer for one purpose (people never asked are absent)."""
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return {}
            rows = conn.execute(
                select(consents.c.user_id, consents.c.granted)
                .where(consents.c.tenant_ix == tenant_ix, consents.c.purpose == str(purpose))
                .order_by(consents.c.seq)
            )
            return {str(user): bool(granted) for user, granted in rows}  # the newest wins

    def add_control(self, tenant: str, user_id: str, control: Control) -> tuple[Control, bool]:
        """Add a control; one already there is kept as it was.

        Returns:
            The stored control, with the time it was first recorded, and whether it is new.

        Raises:
            Erased: the person was erased.
        """
        with write_tx(self._engine) as conn:
            tenant_ix = self._writable(conn, tenant, user_id)
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            key = {
                "tenant_ix": tenant_ix,
                "user_id": user_id,
                "kind": str(control.kind),
                "value": control.value,
            }
            at = _now() if control.at is None else to_micros(control.at)
            # RETURNING, not rowcount: the driver's rowcount is not reliable for a skipped row
            added = conn.execute(
                insert(user_controls)
                .values(**key, at=at)
                .on_conflict_do_nothing()
                .returning(user_controls.c.at)
            ).first()
            row = conn.execute(
                select(user_controls).where(*(user_controls.c[k] == v for k, v in key.items()))
            ).one()
        return _control(row), added is not None

    def remove_control(self, tenant: str, user_id: str, kind: ControlKind, value: str) -> bool:
        """Remove a control; True if it existed."""
        with write_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return False
            result = conn.execute(
                delete(user_controls).where(
                    user_controls.c.tenant_ix == tenant_ix,
                    user_controls.c.user_id == user_id,
                    user_controls.c.kind == str(kind),
                    user_controls.c.value == value,
                )
            )
            return bool(result.rowcount)

    def _writable(self, conn: Connection, tenant: str, user_id: str) -> int:
        tenant_ix = self._codes.tenant(conn, tenant, create=True)
        assert tenant_ix is not None
        epoch = self._codes.sync_epoch(conn, tenant_ix)
        if self._tombstones.erased(conn, tenant, tenant_ix, epoch, [user_id]):
            raise Erased(
                "this user was erased; a tombstone stops a write from re-creating them "
                "(lift it with 'penchant privacy reinstate' if they came back)",
                field="user_id",
            )
        return tenant_ix
