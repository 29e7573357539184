"""The SQL content store: slots and their variants, per tenant."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, Table, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from penchant.schema.content import Slot, Variant, VariantStatus
from penchant.store.sql.engine import read_tx, write_tx
from penchant.store.sql.tables import slots, variants


def _now() -> int:
    return int(time.time() * 1_000_000)


def _upsert(conn: Any, table: Table, keys: list[str], row: dict[str, Any]) -> None:
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).values(**row)
    updates = {c.name: stmt.excluded[c.name] for c in table.c if c.name not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates))


class SqlContentStore:
    """Slots and variants over SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def put_slot(self, tenant: str, slot: Slot) -> None:
        """Create or replace a slot's definition (its variants stay)."""
        row = {"tenant": tenant, "name": slot.id, "body": slot.model_dump_json()}
        with write_tx(self._engine) as conn:
            _upsert(conn, slots, ["tenant", "name"], {**row, "updated_at": _now()})

    def get_slot(self, tenant: str, name: str) -> Slot | None:
        """A slot, or None."""
        stmt = select(slots.c.body).where(slots.c.tenant == tenant, slots.c.name == name)
        with read_tx(self._engine) as conn:
            body = conn.execute(stmt).scalar()
        return Slot.model_validate_json(body) if body is not None else None

    def list_slots(self, tenant: str) -> list[Slot]:
        """Every slot of a tenant, by name."""
        stmt = select(slots.c.body).where(slots.c.tenant == tenant).order_by(slots.c.name)
        with read_tx(self._engine) as conn:
            return [Slot.model_validate_json(b) for b in conn.execute(stmt).scalars()]

    def delete_slot(self, tenant: str, name: str) -> bool:
        """Delete a slot and its variants; True if it existed."""
        with write_tx(self._engine) as conn:
            conn.execute(
                delete(variants).where(variants.c.tenant == tenant, variants.c.slot == name)
            )
            gone = conn.execute(delete(slots).where(slots.c.tenant == tenant, slots.c.name == name))
            return bool(gone.rowcount)

    def put_variant(self, tenant: str, slot: str, variant: Variant) -> None:
        """Create or replace a variant of a slot."""
        row = {
            "tenant": tenant,
            "slot": slot,
            "variant_id": variant.id,
            "status": variant.status,
            "body": variant.model_dump_json(),
            "updated_at": _now(),
        }
        with write_tx(self._engine) as conn:
            _upsert(conn, variants, ["tenant", "slot", "variant_id"], row)

    def get_variant(self, tenant: str, slot: str, variant_id: str) -> Variant | None:
        """A variant, or None."""
        stmt = select(variants.c.body).where(
            variants.c.tenant == tenant,
            variants.c.slot == slot,
            variants.c.variant_id == variant_id,
        )
        with read_tx(self._engine) as conn:
            body = conn.execute(stmt).scalar()
        return Variant.model_validate_json(body) if body is not None else None

    def list_variants(
        self, tenant: str, slot: str, status: VariantStatus | None = None
    ) -> list[Variant]:
        """A slot's variants (of one status, when given), by id."""
        stmt = select(variants.c.body).where(variants.c.tenant == tenant, variants.c.slot == slot)
        if status is not None:
            stmt = stmt.where(variants.c.status == status)
        with read_tx(self._engine) as conn:
            rows = conn.execute(stmt.order_by(variants.c.variant_id)).scalars()
            return [Variant.model_validate_json(b) for b in rows]

    def set_status(self, tenant: str, slot: str, variant_id: str, status: VariantStatus) -> bool:
        """Move a variant to another status; True if it exists."""
        with write_tx(self._engine) as conn:
            stmt = select(variants.c.body).where(
                variants.c.tenant == tenant,
                variants.c.slot == slot,
                variants.c.variant_id == variant_id,
            )
            body = conn.execute(stmt).scalar()
            if body is None:
                return False
            variant = Variant.model_validate_json(body).model_copy(update={"status": status})
            conn.execute(
                variants.update()
                .where(
                    variants.c.tenant == tenant,
                    variants.c.slot == slot,
                    variants.c.variant_id == variant_id,
                )
                .values(status=status, body=variant.model_dump_json(), updated_at=_now())
            )
            return True
