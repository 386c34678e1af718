"""reconciliation_windows.incarnation: lets a revision guard protect the newest correction.

A window row now only yields to a record of a higher-or-equal revision, so a stale
revision (a worker that lost the partition but still emitted) can never replace a newer
correction. Revisions restart on a new broker incarnation, so, as for `payments`, a row
written under another incarnation always yields.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("reconciliation_windows",
                  sa.Column("incarnation", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("reconciliation_windows") as batch:
        batch.drop_column("incarnation")
