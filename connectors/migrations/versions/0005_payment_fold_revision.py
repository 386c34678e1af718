"""payments.fold_revision: which money rules folded the row, so a state folded again can replace it.

A payment's state is a fold of its events by the money rules of `streams/fold.py`, whose revision
(`FOLD_REVISION`) every state carries. When the rules change, `paystream state rebuild` folds the
stored states again: same events, so the same version, a higher revision. The guard lets a higher
revision replace the row at an equal version (and never a lower one). Rows written before this
migration read 0, the revision of states folded before revisions existed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("fold_revision", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("fold_revision")
