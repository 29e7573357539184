"""The small storage interfaces, one per kind of data. One contract suite tests every backend."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import pyarrow as pa

from penchant.schema import Event, Item, User

#: Arrow schema of a bulk event table: ts is microseconds since the epoch (UTC), context JSON.
EVENT_TABLE_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("user_id", pa.string()),
        ("session_id", pa.string()),
        ("item_id", pa.string()),
        ("type", pa.string()),
        ("value", pa.float64()),
        ("ts", pa.int64()),
        ("context", pa.string()),
    ]
)


@dataclass(frozen=True)
class Ack:
    """What a write did. Returned only once the write is durable.

    Attributes:
        stored: events newly stored.
        duplicates: event ids that were already stored (or repeated in the batch) and so were
            not stored again.
        skipped_batch: the whole batch carried a batch key that was already applied.
        refused: positions in the batch of rows not stored because their user was erased
            (a tombstone stops a later event from re-creating the person).
    """

    stored: int
    duplicates: tuple[str, ...] = ()
    skipped_batch: bool = False
    refused: tuple[int, ...] = ()


@dataclass(frozen=True)
class EventFilter:
    """Which events a scan returns; every set field must match."""

    user_id: str | None = None
    session_id: str | None = None
    item_id: str | None = None
    types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored API key: only the hash of its secret is kept."""

    key_id: str
    tenant: str
    secret_hash: str
    scopes: tuple[str, ...]
    name: str = ""
    created_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class DataQuality:
    """Counts that tell whether the data is fit for training."""

    events: int
    users: int
    sessions: int
    items: int
    catalog_items: int
    catalog_users: int
    events_unknown_item: int
    unknown_items: int
    events_without_item: int
    by_type: dict[str, int] = field(default_factory=dict)
    first_ts: datetime | None = None
    last_ts: datetime | None = None


class EventStore(Protocol):
    """The event log of every tenant: append-only, idempotent on `(tenant, event_id)`."""

    def append(self, tenant: str, events: Sequence[Event]) -> Ack:
        """Store events; the same event_id twice is stored once. Durable on return."""
        ...

    def append_table(self, tenant: str, table: pa.Table, *, batch_key: str | None = None) -> Ack:
        """Store a columnar batch (`EVENT_TABLE_SCHEMA`), all or nothing.

        Rows with an event_id are idempotent on it; a `batch_key` makes the whole batch
        idempotent (a repeated key stores nothing), for sources without event ids.
        """
        ...

    def scan(
        self, tenant: str, where: EventFilter | None = None, *, batch_size: int = 10_000
    ) -> Iterator[list[Event]]:
        """Stream matching events in the order they were stored, a batch at a time."""
        ...

    def scan_tables(
        self, tenant: str, where: EventFilter | None = None, *, batch_size: int = 100_000
    ) -> Iterator[pa.Table]:
        """`scan` as tables of `EVENT_TABLE_SCHEMA` (the context as its stored JSON), for
        readers of many events that need no record per event."""
        ...

    def interactions(
        self, tenant: str, since: datetime | None = None, *, batch_size: int = 100_000
    ) -> Iterator[pa.Table]:
        """Stream (user, session, item, type, value, timestamp) as dictionary-encoded tables."""
        ...

    def delete_user(self, tenant: str, user_id: str) -> int:
        """Delete every event of a user; return how many."""
        ...

    def delete_before(
        self, tenant: str, event_type: str, before: datetime, *, batch_size: int = 10_000
    ) -> int:
        """Delete a tenant's events of one type older than `before`; return how many.

        Rows go in chunks of at most `batch_size`, each committed on its own: a process killed
        midway keeps the chunks it committed and loses nothing else, and a chunk holds the
        write lock only briefly. Running it again finishes the job (it is idempotent). A type
        the tenant never stored deletes nothing and is not recorded.
        """
        ...

    def event_types(self, tenant: str) -> list[str]:
        """The event types a tenant has ever stored, sorted (retention's "every other type")."""
        ...

    def count(self, tenant: str, where: EventFilter | None = None) -> int:
        """How many events a tenant has (that match `where`, when given)."""
        ...


class CatalogStore(Protocol):
    """Items and users of every tenant."""

    def upsert_items(self, tenant: str, items: Sequence[Item]) -> int: ...

    def get_item(self, tenant: str, item_id: str) -> Item | None: ...

    def delete_item(self, tenant: str, item_id: str) -> bool: ...

    def scan_items(self, tenant: str, *, batch_size: int = 10_000) -> Iterator[list[Item]]: ...

    def upsert_users(self, tenant: str, users: Sequence[User]) -> int: ...

    def get_user(self, tenant: str, user_id: str) -> User | None: ...

    def delete_user(self, tenant: str, user_id: str) -> bool: ...

    def scan_users(self, tenant: str, *, batch_size: int = 10_000) -> Iterator[list[User]]: ...


class KeyStore(Protocol):
    """API keys, stored as hashes."""

    def put_key(self, record: ApiKeyRecord) -> None: ...

    def get_key(self, key_id: str) -> ApiKeyRecord | None: ...

    def list_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]: ...

    def revoke_key(self, key_id: str) -> bool: ...
