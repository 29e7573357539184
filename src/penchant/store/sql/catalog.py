"""The SQL catalog: items and users, upserted and read per tenant."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from penchant.errors import Erased
from penchant.schema import ConsentState, Item, User
from penchant.schema.common import from_micros, to_micros
from penchant.store.sql.dictionary import Dictionary
from penchant.store.sql.engine import read_tx, write_tx
from penchant.store.sql.tables import items, users
from penchant.store.sql.tombstones import Tombstones


def _now() -> int:
    return int(time.time() * 1_000_000)


def _upsert(conn: Any, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table)
    updates = {c.name: stmt.excluded[c.name] for c in table.c if c.name not in ("tenant_ix", key)}
    conn.execute(stmt.on_conflict_do_update(index_elements=["tenant_ix", key], set_=updates), rows)


def _item_row(tenant_ix: int, item: Item, now: int) -> dict[str, Any]:
    return {
        "tenant_ix": tenant_ix,
        "item_id": item.id,
        "title": item.title,
        "text": item.text,
        "categories": orjson.dumps(item.categories).decode(),
        "tags": orjson.dumps(item.tags).decode(),
        "provider": item.provider,
        "attributes": orjson.dumps(item.attributes).decode(),
        "published_at": to_micros(item.published_at) if item.published_at else None,
        "expires_at": to_micros(item.expires_at) if item.expires_at else None,
        "available": item.available,
        "updated_at": now,
    }


def _row_item(row: Any) -> Item:
    return Item.model_construct(
        id=row.item_id,
        title=row.title,
        text=row.text,
        categories=orjson.loads(row.categories),
        tags=orjson.loads(row.tags),
        provider=row.provider,
        attributes=orjson.loads(row.attributes),
        published_at=from_micros(row.published_at) if row.published_at is not None else None,
        expires_at=from_micros(row.expires_at) if row.expires_at is not None else None,
        available=bool(row.available),
    )


def _user_row(tenant_ix: int, user: User, now: int) -> dict[str, Any]:
    consent = {str(p): c.model_dump(mode="json") for p, c in user.consent.items()}
    return {
        "tenant_ix": tenant_ix,
        "user_id": user.id,
        "attributes": orjson.dumps(user.attributes).decode(),
        "consent": orjson.dumps(consent).decode(),
        "updated_at": now,
    }


def _row_user(row: Any) -> User:
    consent = {p: ConsentState.model_validate(c) for p, c in orjson.loads(row.consent).items()}
    return User.model_validate(
        {"id": row.user_id, "attributes": orjson.loads(row.attributes), "consent": consent}
    )


class SqlCatalogStore:
    """`CatalogStore` over SQLite or PostgreSQL."""

    def __init__(self, engine: Engine, codes: Dictionary, tombstones: Tombstones) -> None:
        self._engine = engine
        self._codes = codes
        self._tombstones = tombstones

    def upsert_items(self, tenant: str, records: Sequence[Item]) -> int:
        """Insert or replace items; return how many were written."""
        return self._upsert(tenant, items, "item_id", [(r, _item_row) for r in records])

    def upsert_users(self, tenant: str, records: Sequence[User]) -> int:
        """Insert or replace users; return how many were written."""
        return self._upsert(tenant, users, "user_id", [(r, _user_row) for r in records])

    def _upsert(self, tenant: str, table: Table, key: str, pairs: list[tuple[Any, Any]]) -> int:
        if not pairs:
            return 0
        now = _now()
        with write_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=True)
            assert tenant_ix is not None
            if table is users:
                self._refuse_erased(conn, tenant, tenant_ix, [r.id for r, _ in pairs])
            # The last record of an id in a batch wins, as if they were sent one by one.
            rows = {r.id: build(tenant_ix, r, now) for r, build in pairs}
            _upsert(conn, table, key, list(rows.values()))
        return len(pairs)

    def _refuse_erased(self, conn: Any, tenant: str, tenant_ix: int, ids: list[str]) -> None:
        epoch = self._codes.sync_epoch(conn, tenant_ix)
        erased = self._tombstones.erased(conn, tenant, tenant_ix, epoch, ids)
        if erased:
            first = next(i for i in ids if i in erased)
            raise Erased(
                f"user {first!r} was erased; a tombstone stops a write from re-creating them "
                "(lift it with 'penchant privacy reinstate' if they came back)",
                field="user_id",
            )

    def get_item(self, tenant: str, item_id: str) -> Item | None:
        """One item, or None."""
        row = self._get(tenant, items, items.c.item_id, item_id)
        return _row_item(row) if row is not None else None

    def get_user(self, tenant: str, user_id: str) -> User | None:
        """One user, or None."""
        row = self._get(tenant, users, users.c.user_id, user_id)
        return _row_user(row) if row is not None else None

    def _get(self, tenant: str, table: Table, key: Any, value: str) -> Any:
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return None
            return conn.execute(
                select(table).where(table.c.tenant_ix == tenant_ix, key == value)
            ).first()

    def delete_item(self, tenant: str, item_id: str) -> bool:
        """Delete an item; True if it existed."""
        return self._delete(tenant, items, items.c.item_id, item_id)

    def delete_user(self, tenant: str, user_id: str) -> bool:
        """Delete a user's catalog record; True if it existed."""
        return self._delete(tenant, users, users.c.user_id, user_id)

    def _delete(self, tenant: str, table: Table, key: Any, value: str) -> bool:
        with write_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
            if tenant_ix is None:
                return False
            result = conn.execute(
                table.delete().where(table.c.tenant_ix == tenant_ix, key == value)
            )
            return bool(result.rowcount)

    def scan_items(self, tenant: str, *, batch_size: int = 10_000) -> Iterator[list[Item]]:
        """Stream a tenant's items in id order."""
        for rows in self._scan(tenant, items, items.c.item_id, batch_size):
            yield [_row_item(r) for r in rows]

    def scan_users(self, tenant: str, *, batch_size: int = 10_000) -> Iterator[list[User]]:
        """Stream a tenant's users in id order."""
        for rows in self._scan(tenant, users, users.c.user_id, batch_size):
            yield [_row_user(r) for r in rows]

    def _scan(self, tenant: str, table: Table, key: Any, batch_size: int) -> Iterator[list[Any]]:
        with read_tx(self._engine) as conn:
            tenant_ix = self._codes.tenant(conn, tenant, create=False)
        if tenant_ix is None:
            return
        after: str | None = None
        while True:
            stmt = select(table).where(table.c.tenant_ix == tenant_ix)
            if after is not None:
                stmt = stmt.where(key > after)
            with read_tx(self._engine) as conn:
                rows = conn.execute(stmt.order_by(key).limit(batch_size)).all()
            if not rows:
                return
            yield list(rows)
            if len(rows) < batch_size:
                return
            after = getattr(rows[-1], key.name)
