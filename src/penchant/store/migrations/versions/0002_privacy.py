"""Privacy: erasure jobs and tombstones, the consent ledger, user controls, the audit log and
the budget of differentially private releases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ROWID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.Column("tenant_ix", sa.Integer, nullable=False),
        sa.Column("tombstone", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("requested_at", sa.BigInteger, nullable=False),
        sa.Column("erased_at", sa.BigInteger),
        sa.Column("counts", sa.Text, nullable=False),
        sa.Column("rebuild_due_at", sa.BigInteger, nullable=False),
        sa.Column("rebuilt_at", sa.BigInteger),
        sa.Column("rebuilt_version", sa.Text),
        sa.Column("lifted_at", sa.BigInteger),
    )
    op.create_index("ix_erasures_tombstone", "erasures", ["tenant_ix", "tombstone"])
    op.create_table(
        "consents",
        sa.Column("seq", _ROWID, primary_key=True, autoincrement=True),
        sa.Column("tenant_ix", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_consents_user", "consents", ["tenant_ix", "user_id"])
    op.create_table(
        "user_controls",
        sa.Column("tenant_ix", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, primary_key=True),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", _ROWID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
    )
    op.create_table(
        "dp_releases",
        sa.Column("seq", _ROWID, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("epsilon", sa.Float, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for name in ("dp_releases", "audit_log", "user_controls", "consents", "erasures"):
        op.drop_table(name)
