"""The SQL content store: slots and their variants, per tenant."""

from __future__ import annotations

from sqlalchemy import Engine, delete, select

from penchant.schema.content import Slot, Variant, VariantStatus
from penchant.store.sql.engine import now_micros, read_tx, upsert, write_tx
from penchant.store.sql.tables import slots, variants


class SqlContentStore:
    """Slots and variants over SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def put_slot(self, tenant: str, slot: Slot) -> None:
        """Create or replace a slot's definition (its variants stay)."""
        row = {"tenant": tenant, "name": slot.id, "body": slot.model_dump_json()}
        with write_tx(self._engine) as conn:
            upsert(conn, slots, ["tenant", "name"], {**row, "updated_at": now_micros()})

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
            "updated_at": now_micros(),
        }
        with write_tx(self._engine) as conn:
            upsert(conn, variants, ["tenant", "slot", "variant_id"], row)

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
                .values(status=status, body=variant.model_dump_json(), updated_at=now_micros())
            )
            return True
