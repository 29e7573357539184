"""Storage: small interfaces by kind of data, each backend chosen by URL."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from penchant.errors import StoreError
from penchant.store.base import (
    EVENT_TABLE_SCHEMA,
    Ack,
    ApiKeyRecord,
    CatalogStore,
    DataQuality,
    EventFilter,
    EventStore,
    KeyStore,
)
from penchant.store.convert import events_to_table
from penchant.store.sql.catalog import SqlCatalogStore
from penchant.store.sql.consent import ConsentRecord, Control, PersonChoices, SqlConsentStore
from penchant.store.sql.content import SqlContentStore
from penchant.store.sql.dictionary import Dictionary
from penchant.store.sql.engine import Synchronous, make_engine, migrate
from penchant.store.sql.events import SqlEventStore
from penchant.store.sql.experiments import SqlExperimentStore
from penchant.store.sql.keys import SqlKeyStore
from penchant.store.sql.meta import StoreMeta
from penchant.store.sql.privacy import ErasedRows, ErasureRecord, SqlPrivacyStore
from penchant.store.sql.quality import data_quality
from penchant.store.sql.tombstones import TombstoneHash, Tombstones


@dataclass
class Store:
    """The persistent stores of one deployment, sharing one database."""

    url: str
    events: EventStore
    catalog: CatalogStore
    keys: KeyStore
    privacy: SqlPrivacyStore
    consent: SqlConsentStore
    content: SqlContentStore
    experiments: SqlExperimentStore
    meta: StoreMeta
    engine: Engine
    _codes: Dictionary

    def quality(self, tenant: str) -> DataQuality:
        """The data-quality report of a tenant (counts, unknown items, event mix)."""
        return data_quality(self.engine, self._codes, tenant)

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()


def open_store(
    url: str,
    *,
    synchronous: Synchronous = "FULL",
    busy_timeout_ms: int = 30_000,
    tombstone_hash: TombstoneHash | None = None,
) -> Store:
    """Open (and migrate) the store at a URL: `sqlite:///file.db` or `postgresql://...`.

    Args:
        url: the store URL.
        synchronous: SQLite's durability level.
        busy_timeout_ms: how long a SQLite writer waits for the lock.
        tombstone_hash: the keyed hash of `(tenant, user_id)` that erasure tombstones hold;
            with it, writes for an erased person are refused. Without it erasure leaves no
            tombstone (a library user's choice; the CLI and the service always pass one).

    Raises:
        ConfigError: the URL is not supported.
        StoreError: the database cannot be reached.
    """
    engine = make_engine(url, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
    try:
        migrate(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise StoreError(f"cannot open the store: {exc.orig}") from exc
    codes = Dictionary()
    tombstones = Tombstones(tombstone_hash)
    return Store(
        url=url,
        events=SqlEventStore(engine, codes, tombstones),
        catalog=SqlCatalogStore(engine, codes, tombstones),
        keys=SqlKeyStore(engine),
        privacy=SqlPrivacyStore(engine, codes, tombstones),
        consent=SqlConsentStore(engine, codes, tombstones),
        content=SqlContentStore(engine),
        experiments=SqlExperimentStore(engine),
        meta=StoreMeta(engine),
        engine=engine,
        _codes=codes,
    )


__all__ = [
    "EVENT_TABLE_SCHEMA",
    "Ack",
    "ApiKeyRecord",
    "CatalogStore",
    "ConsentRecord",
    "Control",
    "DataQuality",
    "ErasedRows",
    "ErasureRecord",
    "EventFilter",
    "EventStore",
    "KeyStore",
    "PersonChoices",
    "SqlContentStore",
    "Store",
    "StoreMeta",
    "Synchronous",
    "TombstoneHash",
    "events_to_table",
    "open_store",
]
