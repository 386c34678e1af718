"""payments: the money components beside the status (authorized, pending refunds, disputes).

A payment's status is derived from its components (streams/fold.py); analysts see them too:
what is authorized and not yet captured, refunds the provider has not completed, and the
disputes' summary status and count. Rows written before this migration read 0 / NULL until
their payment's next state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("authorized_minor", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("payments", sa.Column("refund_pending_minor", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("payments", sa.Column("dispute_status", sa.Text(), nullable=True))
    op.add_column("payments", sa.Column("dispute_count", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        for column in ("dispute_count", "dispute_status", "refund_pending_minor", "authorized_minor"):
            batch.drop_column(column)
