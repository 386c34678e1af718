"""payments: the events each row folds, and the events some other state of the payment claimed.

`event_keys` (JSON array, sorted) is the set of events the row's state was folded from; its size
is the row's version. `diverged_events` (JSON array, NULL when consistent) lists events another
state of the same payment claimed that the kept row lacks: the pipeline produced two histories for
one payment, and `paystream state rebuild --payment ID` is the fix. The sink sets both
(`connectors/divergence.py`). Rows written before this migration have no `event_keys` ('') and are
not compared until their payment's next state.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("event_keys", sa.Text(), nullable=False, server_default=""))
    op.add_column("payments", sa.Column("diverged_events", sa.Text(), nullable=True))
    op.create_index("ix_payments_diverged", "payments", ["provider", "payment_id"],
                    postgresql_where=sa.text("diverged_events IS NOT NULL"),
                    sqlite_where=sa.text("diverged_events IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_payments_diverged", table_name="payments")
    with op.batch_alter_table("payments") as batch:
        for column in ("diverged_events", "event_keys"):
            batch.drop_column(column)
