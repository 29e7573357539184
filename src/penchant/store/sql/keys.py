"""The SQL key store: API keys as hashes, never as secrets."""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import Engine, select

from penchant.schema.common import from_micros, to_micros
from penchant.store.base import ApiKeyRecord
from penchant.store.sql.engine import read_tx, write_tx
from penchant.store.sql.tables import api_keys


def _record(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row.key_id,
        tenant=row.tenant,
        name=row.name,
        secret_hash=row.secret_hash,
        scopes=tuple(orjson.loads(row.scopes)),
        created_at=from_micros(row.created_at),
        revoked_at=from_micros(row.revoked_at) if row.revoked_at is not None else None,
    )


class SqlKeyStore:
    """`KeyStore` over SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def put_key(self, record: ApiKeyRecord) -> None:
        """Store a new key record."""
        created = record.created_at
        with write_tx(self._engine) as conn:
            conn.execute(
                api_keys.insert().values(
                    key_id=record.key_id,
                    tenant=record.tenant,
                    name=record.name,
                    secret_hash=record.secret_hash,
                    scopes=orjson.dumps(list(record.scopes)).decode(),
                    created_at=to_micros(created) if created else int(time.time() * 1e6),
                    revoked_at=None,
                )
            )

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        """A key record by its public id."""
        with read_tx(self._engine) as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        return _record(row) if row is not None else None

    def list_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        """Every key record, or those of one tenant."""
        stmt = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        if tenant is not None:
            stmt = stmt.where(api_keys.c.tenant == tenant)
        with read_tx(self._engine) as conn:
            return [_record(r) for r in conn.execute(stmt)]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; True if it existed and was active."""
        with write_tx(self._engine) as conn:
            result = conn.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=int(time.time() * 1_000_000))
            )
            return bool(result.rowcount)
