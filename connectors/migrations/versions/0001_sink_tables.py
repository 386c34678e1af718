"""Sink tables: payment_events, payments, reconciliation_windows, dead_letters, sink_offsets.

Types are chosen to mean the same on both databases: timestamps are
`timestamptz` on PostgreSQL and ISO 8601 text with a UTC offset on SQLite,
each with an integer `<name>_ms` twin (epoch milliseconds) for arithmetic;
JSON is `jsonb` on PostgreSQL and JSON text on SQLite; money is BIGINT minor units.
`sink_clock` gives "now" in epoch milliseconds under one name on both.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
MS = sa.BigInteger()
MONEY = sa.BigInteger()
JSON = sa.Text().with_variant(postgresql.JSONB(), "postgresql")
CURRENCY_OK = "currency IS NULL OR (length(currency) = 3 AND upper(currency) = currency)"

_CLOCK = {
    "sqlite": "CREATE VIEW sink_clock AS "
              "SELECT CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) AS now_ms",
    "postgresql": "CREATE VIEW sink_clock AS "
                  "SELECT CAST(floor(extract(epoch FROM now()) * 1000) AS BIGINT) AS now_ms",
}


def _money(*names: str, nullable: bool = False) -> list[sa.Column[int]]:
    return [sa.Column(name, MONEY, nullable=nullable) for name in names]


def upgrade() -> None:
    op.create_table(
        "payment_events",
        sa.Column("event_key", sa.Text(), primary_key=True),
        sa.Column("payment_id", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("status", sa.Text()),
        sa.Column("amount_minor", MONEY),
        sa.Column("currency", sa.Text()),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("provider_status", sa.Text()),
        sa.Column("related_ids", JSON, nullable=False),
        sa.Column("envelope_id", sa.Text(), nullable=False),
        sa.Column("ingested_at", TS, nullable=False),
        sa.Column("occurred_at_ms", MS, nullable=False),
        sa.Column("ingested_at_ms", MS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("received_at_ms", MS, nullable=False),
        sa.Column("refunded_total_minor", MONEY),
        sa.Column("livemode", sa.Boolean()),
        sa.CheckConstraint(CURRENCY_OK, name="ck_payment_events_currency"),
    )
    op.create_index("ix_payment_events_payment", "payment_events", ["provider", "payment_id"])
    op.create_index("ix_payment_events_occurred", "payment_events", ["occurred_at_ms"])

    op.create_table(
        "payments",
        sa.Column("payment_id", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("amount_minor", MONEY),
        *_money("captured_minor", "refunded_minor", "disputed_minor"),
        sa.Column("currency", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("last_event_key", sa.Text(), nullable=False),
        sa.Column("created_at_ms", MS, nullable=False),
        sa.Column("updated_at_ms", MS, nullable=False),
        sa.Column("status_at", TS, nullable=False),
        sa.Column("status_at_ms", MS, nullable=False),
        sa.Column("flags", JSON, nullable=False),
        sa.Column("incarnation", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("payment_id", "provider", name="pk_payments"),
        sa.CheckConstraint(CURRENCY_OK, name="ck_payments_currency"),
    )
    op.create_index("ix_payments_status_updated", "payments", ["status", "updated_at_ms"])

    op.create_table(
        "reconciliation_windows",
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("window_end", TS, nullable=False),
        *_money("captured_minor", "refunded_minor", "disputed_minor"),
        sa.Column("failed_count", sa.BigInteger(), nullable=False),
        *_money("net_minor", "ledger_expected_minor", "provider_confirmed_minor"),
        sa.Column("missing_at_provider", JSON, nullable=False),
        sa.Column("unexpected_at_provider", JSON, nullable=False),
        sa.Column("amount_mismatches", JSON, nullable=False),
        sa.Column("late_events", sa.BigInteger(), nullable=False),
        sa.Column("window_start_ms", MS, nullable=False),
        sa.Column("window_end_ms", MS, nullable=False),
        sa.Column("counts_by_status", JSON, nullable=False),
        sa.Column("sums_by_status", JSON, nullable=False),
        sa.Column("missing_count", sa.Integer(), nullable=False),
        sa.Column("unexpected_count", sa.Integer(), nullable=False),
        sa.Column("mismatch_count", sa.Integer(), nullable=False),
        sa.Column("is_correction", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "currency", "window_start", name="pk_reconciliation_windows"),
        sa.CheckConstraint(CURRENCY_OK, name="ck_reconciliation_windows_currency"),
    )
    op.create_index("ix_reconciliation_windows_start", "reconciliation_windows", ["window_start_ms"])

    op.create_table(
        "dead_letters",
        sa.Column("original_topic", sa.Text(), nullable=False),
        sa.Column("original_partition", sa.Integer(), nullable=False),
        sa.Column("original_offset", sa.BigInteger(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("exception_class", sa.Text(), nullable=False),
        sa.Column("exception_message", sa.Text(), nullable=False),
        sa.Column("failed_at", TS, nullable=False),
        sa.Column("payload", sa.LargeBinary()),
        sa.Column("failed_at_ms", MS, nullable=False),
        sa.Column("original_key", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("headers", JSON, nullable=False),
        sa.Column("dlq_partition", sa.Integer(), nullable=False),
        sa.Column("dlq_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("original_topic", "original_partition", "original_offset", name="pk_dead_letters"),
    )
    op.create_index("ix_dead_letters_failed", "dead_letters", ["failed_at_ms"])

    op.create_table(
        "sink_offsets",
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("cluster_id", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition", name="pk_sink_offsets"),
    )

    op.execute(_CLOCK[op.get_bind().dialect.name])


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS sink_clock")
    for table in ("sink_offsets", "dead_letters", "reconciliation_windows", "payments", "payment_events"):
        op.drop_table(table)
