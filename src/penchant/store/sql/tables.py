"""Table definitions shared by both SQL backends; migrations create exactly these.

Events are dictionary-encoded: user, session, item and type are small integers pointing into
`dictionary`. That keeps the append-only log narrow, which is what lets bulk import run at
hundreds of thousands of rows a second, and hands training integer codes directly.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

#: A 64-bit integer that is the rowid alias on SQLite.
RowId = BigInteger().with_variant(Integer, "sqlite")

KIND_USER = 1
KIND_SESSION = 2
KIND_ITEM = 3
KIND_TYPE = 4

tenants = Table(
    "tenants",
    metadata,
    Column("ix", Integer, primary_key=True, autoincrement=True),
    Column("id", Text, nullable=False, unique=True),
    # Bumped by every erasure, so that writers drop cached dictionary codes.
    Column("epoch", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", BigInteger, nullable=False),
)

dictionary = Table(
    "dictionary",
    metadata,
    Column("ix", RowId, primary_key=True, autoincrement=True),
    Column("tenant_ix", Integer, nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("key", Text, nullable=False),
    UniqueConstraint("tenant_ix", "kind", "key", name="uq_dictionary_key"),
)

events = Table(
    "events",
    metadata,
    Column("seq", RowId, primary_key=True, autoincrement=True),
    Column("tenant_ix", Integer, nullable=False),
    Column("event_id", Text, nullable=True),
    Column("user_ix", BigInteger, nullable=True),
    Column("session_ix", BigInteger, nullable=True),
    Column("item_ix", BigInteger, nullable=True),
    Column("type_ix", BigInteger, nullable=False),
    Column("value", Float, nullable=True),
    Column("ts", BigInteger, nullable=False),
    Column("context", Text, nullable=True),
    Index(
        "ux_events_event_id",
        "tenant_ix",
        "event_id",
        unique=True,
        sqlite_where=text("event_id IS NOT NULL"),
        postgresql_where=text("event_id IS NOT NULL"),
    ),
)

# Beside the log, which has no index by user (one would cost bulk import most of its
# speed): the user codes of appended events, one row per append (small appends share one),
# as little-endian int64 (-1: no user), with their sequence numbers (NULL when they are
# first_seq, first_seq + 1, ...; first_seq is always the smallest). Erasure finds a
# person's events here (`store.sql.event_users`).
event_users = Table(
    "event_users",
    metadata,
    Column("tenant_ix", Integer, primary_key=True, autoincrement=False),
    Column("first_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("users", LargeBinary, nullable=False),
    Column("seqs", LargeBinary, nullable=True),
)

import_batches = Table(
    "import_batches",
    metadata,
    Column("tenant_ix", Integer, primary_key=True),
    Column("batch_key", Text, primary_key=True),
    Column("stored", BigInteger, nullable=False),
    Column("at", BigInteger, nullable=False),
)

items = Table(
    "items",
    metadata,
    Column("tenant_ix", Integer, primary_key=True),
    Column("item_id", Text, primary_key=True),
    Column("title", Text),
    Column("text", Text),
    Column("categories", Text, nullable=False),
    Column("tags", Text, nullable=False),
    Column("provider", Text),
    Column("attributes", Text, nullable=False),
    Column("published_at", BigInteger),
    Column("expires_at", BigInteger),
    Column("available", Boolean, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("tenant_ix", Integer, primary_key=True),
    Column("user_id", Text, primary_key=True),
    Column("attributes", Text, nullable=False),
    Column("consent", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", Text, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
)

# -- privacy ------------------------------------------------------------------------------
# Erasure jobs; `tombstone` is a keyed hash of the erased user id (never the id itself), so
# that a later event for that id is refused instead of silently re-creating the person.
erasures = Table(
    "erasures",
    metadata,
    Column("job_id", Text, primary_key=True),
    Column("tenant_ix", Integer, nullable=False),
    Column("tombstone", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("requested_at", BigInteger, nullable=False),
    Column("erased_at", BigInteger),
    Column("counts", Text, nullable=False),
    Column("rebuild_due_at", BigInteger, nullable=False),
    Column("rebuilt_at", BigInteger),
    Column("rebuilt_version", Text),
    Column("lifted_at", BigInteger),
    Index("ix_erasures_tombstone", "tenant_ix", "tombstone"),
)

# The consent ledger: every change of a person's consent to a purpose, oldest first.
consents = Table(
    "consents",
    metadata,
    Column("seq", RowId, primary_key=True, autoincrement=True),
    Column("tenant_ix", Integer, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("version", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
    Index("ix_consents_user", "tenant_ix", "user_id"),
)

# What a person asked not to see: an item, a category or a provider ("not interested").
user_controls = Table(
    "user_controls",
    metadata,
    Column("tenant_ix", Integer, primary_key=True),
    Column("user_id", Text, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("value", Text, primary_key=True),
    Column("at", BigInteger, nullable=False),
)

# Who did what to keys, consent, exports and erasures, and how it ended; never payloads,
# and user ids only as keyed hashes.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", RowId, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("outcome", Text, nullable=False),
)

# Differentially private releases: the privacy budget each one spent.
dp_releases = Table(
    "dp_releases",
    metadata,
    Column("seq", RowId, primary_key=True, autoincrement=True),
    Column("tenant", Text, nullable=False),
    Column("report", Text, nullable=False),
    Column("epsilon", Float, nullable=False),
    Column("at", BigInteger, nullable=False),
)

# Store-wide facts that must not change under existing data (pseudonymization and its key).
store_meta = Table(
    "store_meta",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

# -- dynamic content ------------------------------------------------------------------------
# Slots and their variants, each stored as its JSON document (`penchant.schema.content`).
slots = Table(
    "slots",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("body", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

variants = Table(
    "variants",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("slot", Text, primary_key=True),
    Column("variant_id", Text, primary_key=True),
    Column("status", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# -- experiments ----------------------------------------------------------------------------
# A/B/n experiments, each stored as its JSON document (`penchant.schema.experiments`); the
# surface and status are columns too, to find the one running on a surface.
experiments = Table(
    "experiments",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("surface", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
