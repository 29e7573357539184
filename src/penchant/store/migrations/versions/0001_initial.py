"""The initial schema: tenants, dictionary, events, import batches, items, users, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ROWID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("ix", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("epoch", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "dictionary",
        sa.Column("ix", _ROWID, primary_key=True, autoincrement=True),
        sa.Column("tenant_ix", sa.Integer, nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.UniqueConstraint("tenant_ix", "kind", "key", name="uq_dictionary_key"),
    )
    op.create_table(
        "events",
        sa.Column("seq", _ROWID, primary_key=True, autoincrement=True),
        sa.Column("tenant_ix", sa.Integer, nullable=False),
        sa.Column("event_id", sa.Text, nullable=True),
        sa.Column("user_ix", sa.BigInteger, nullable=True),
        sa.Column("session_ix", sa.BigInteger, nullable=True),
        sa.Column("item_ix", sa.BigInteger, nullable=True),
        sa.Column("type_ix", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("context", sa.Text, nullable=True),
    )
    op.create_index(
        "ux_events_event_id",
        "events",
        ["tenant_ix", "event_id"],
        unique=True,
        sqlite_where=sa.text("event_id IS NOT NULL"),
        postgresql_where=sa.text("event_id IS NOT NULL"),
    )
    op.create_table(
        "import_batches",
        sa.Column("tenant_ix", sa.Integer, primary_key=True),
        sa.Column("batch_key", sa.Text, primary_key=True),
        sa.Column("stored", sa.BigInteger, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("tenant_ix", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.Text, primary_key=True),
        sa.Column("title", sa.Text),
        sa.Column("text", sa.Text),
        sa.Column("categories", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("provider", sa.Text),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("published_at", sa.BigInteger),
        sa.Column("expires_at", sa.BigInteger),
        sa.Column("available", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("tenant_ix", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("consent", sa.Text, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
    )


def downgrade() -> None:
    for name in ("api_keys", "users", "items", "import_batches", "events", "dictionary"):
        op.drop_table(name)
    op.drop_table("tenants")
