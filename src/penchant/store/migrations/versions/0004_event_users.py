"""The user column beside the event log (`event_users`), filled from the events already stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_CHUNK = 131_072
_LARGEST = 16_384  # entries a row holds at most, as `store.sql.event_users.LARGEST`


def upgrade() -> None:
    table = op.create_table(
        "event_users",
        sa.Column("tenant_ix", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("first_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("users", sa.LargeBinary, nullable=False),
        sa.Column("seqs", sa.LargeBinary, nullable=True),
    )
    assert table is not None
    if op.get_bind().dialect.name == "postgresql":
        # Codes compress by about half, but pglz takes ~0.1 s a MiB to write (a bulk import
        # writes 8 MiB a million events) and time again to read back at every erasure.
        for column in ("users", "seqs"):
            op.execute(f"ALTER TABLE event_users ALTER COLUMN {column} SET STORAGE EXTERNAL")
    _backfill(op.get_bind(), table)


def _backfill(bind: sa.Connection, table: sa.Table) -> None:
    """One row per tenant and chunk of the log, in the layout the store writes."""
    read = sa.text(
        "SELECT seq, tenant_ix, coalesce(user_ix, -1) FROM events "
        "WHERE seq > :after ORDER BY seq LIMIT :n"
    )
    after = 0
    while True:
        rows = bind.execute(read, {"after": after, "n": _CHUNK}).all()
        if not rows:
            return
        data = np.asarray(rows, dtype=np.int64)
        after = int(data[-1, 0])
        for tenant_ix in np.unique(data[:, 1]):
            mine = data[data[:, 1] == tenant_ix]
            for at in range(0, len(mine), _LARGEST):
                part = mine[at : at + _LARGEST]
                seqs = part[:, 0]
                contiguous = bool((np.diff(seqs) == 1).all())
                bind.execute(
                    table.insert().values(
                        tenant_ix=int(tenant_ix),
                        first_seq=int(seqs[0]),
                        last_seq=int(seqs[-1]),
                        users=part[:, 2].astype("<i8").tobytes(),
                        seqs=None if contiguous else seqs.astype("<i8").tobytes(),
                    )
                )
        if len(rows) < _CHUNK:
            return


def downgrade() -> None:
    op.drop_table("event_users")
