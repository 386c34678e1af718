"""The analyst tables: column order, conflict rules and the rows built from records.

The DDL itself lives in the Alembic migrations; this module holds what the
writers need at run time: the column list of each table (row tuples follow it),
its primary key and what a conflict on that key does. The SQL is portable
between SQLite (3.24+) and PostgreSQL: both speak `INSERT … ON CONFLICT (…) DO …`
with `excluded.` and a `WHERE` on the update.

Every timestamp column has an integer twin `<name>_ms` (epoch milliseconds, UTC)
so analysts can do time arithmetic the same way on both databases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.clock import to_epoch_ms
from schemas.dlq import parse_dlq_headers
from schemas.records import ReconciliationWindow

__all__ = [
    "DEAD_LETTERS",
    "PAYMENTS",
    "PAYMENT_EVENTS",
    "RECONCILIATION_WINDOWS",
    "SINK_OFFSETS",
    "TABLES",
    "Adapters",
    "Row",
    "Table",
    "dead_letter_row",
    "event_row",
    "offsets_upsert_sql",
    "payment_row",
    "window_row",
]

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """One sink table: `columns` is the order of every row tuple built for it."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    conflict: str
    """What follows `ON CONFLICT (key)`."""
    keep: str = "last"
    """Which of several rows with one key in a batch the bulk path keeps: first | last | max:<columns> (the
    highest, the first of equals: for a strict `<` guard) | latest:<columns> (the highest, the last of equals:
    for a `<=` guard); <columns> is one column or several, comma-separated, compared in that order."""

    def insert_sql(self, placeholder: str) -> str:
        values = ", ".join([placeholder] * len(self.columns))
        # identifiers come from the constants below, values are parameters
        return f"INSERT INTO {self.name} ({', '.join(self.columns)}) VALUES ({values}) {self._on_conflict()}"  # noqa: S608

    def insert_select_sql(self, source: str) -> str:
        cols = ", ".join(self.columns)
        return f"INSERT INTO {self.name} ({cols}) SELECT {cols} FROM {source} {self._on_conflict()}"  # noqa: S608

    def _on_conflict(self) -> str:
        return f"ON CONFLICT ({', '.join(self.key)}) {self.conflict}"

    def dedupe(self, rows: Sequence[Row]) -> list[Row]:
        """One row per key, chosen so the result equals applying all rows in order."""
        index = [self.columns.index(c) for c in self.key]
        chosen: dict[tuple[Any, ...], Row] = {}
        if self.keep == "first":
            for row in rows:
                chosen.setdefault(tuple(row[i] for i in index), row)
        elif self.keep.startswith(("max:", "latest:")):
            kind, _, names = self.keep.partition(":")
            at = [self.columns.index(column) for column in names.split(",")]
            for row in rows:
                key = tuple(row[i] for i in index)
                held = chosen.get(key)
                if held is None:
                    chosen[key] = row
                    continue
                mine, theirs = [row[i] for i in at], [held[i] for i in at]
                if mine > theirs or (kind == "latest" and mine == theirs):
                    chosen[key] = row
        else:
            for row in rows:
                chosen[tuple(row[i] for i in index)] = row
        return list(chosen.values())


def _update_all(columns: Sequence[str], key: Sequence[str]) -> str:
    return "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)


_EVENT_COLUMNS = (
    "event_key", "payment_id", "provider", "event_type", "kind", "status", "amount_minor", "currency",
    "occurred_at", "provider_status", "related_ids", "envelope_id", "ingested_at",
    "occurred_at_ms", "ingested_at_ms", "received_at", "received_at_ms", "refunded_total_minor", "livemode",
)
PAYMENT_EVENTS = Table("payment_events", _EVENT_COLUMNS, ("event_key",), "DO NOTHING", keep="first")

_PAYMENT_COLUMNS = (
    "payment_id", "provider", "status", "amount_minor", "captured_minor", "refunded_minor", "disputed_minor",
    "currency", "created_at", "updated_at", "version", "last_event_key",
    "created_at_ms", "updated_at_ms", "status_at", "status_at_ms", "flags", "incarnation",
    "authorized_minor", "refund_pending_minor", "dispute_status", "dispute_count",
    "event_keys", "diverged_events", "fold_revision",
)
_PAYMENT_KEY = ("payment_id", "provider")
# The version guard: an older or equal version never overwrites a newer one, except that a
# state of the same version folded by newer money rules (a higher `fold_revision`: same events,
# folded again by `paystream state rebuild`) replaces it, and a row from an earlier broker
# incarnation (whose versions restarted) always yields.
# A version is the number of events the state folds, so the guard alone cannot tell an older
# state from a diverged one; `connectors/divergence.py` compares `event_keys` before the write.
PAYMENTS = Table(
    "payments", _PAYMENT_COLUMNS, _PAYMENT_KEY,
    _update_all(_PAYMENT_COLUMNS, _PAYMENT_KEY)
    + " WHERE payments.incarnation <> excluded.incarnation OR payments.version < excluded.version"
      " OR (payments.version = excluded.version AND payments.fold_revision < excluded.fold_revision)",
    keep="max:version,fold_revision",
)

_WINDOW_COLUMNS = (
    "provider", "currency", "window_start", "window_end", "captured_minor", "refunded_minor", "disputed_minor",
    "failed_count", "net_minor", "ledger_expected_minor", "provider_confirmed_minor",
    "missing_at_provider", "unexpected_at_provider", "amount_mismatches", "late_events",
    "window_start_ms", "window_end_ms", "counts_by_status", "sums_by_status",
    "missing_count", "unexpected_count", "mismatch_count", "is_correction", "revision", "incarnation",
)
_WINDOW_KEY = ("provider", "currency", "window_start")
# The revision guard: a stale (lower) revision never replaces a newer correction; a row from an
# earlier broker incarnation (whose revisions restarted) always yields.
RECONCILIATION_WINDOWS = Table(
    "reconciliation_windows", _WINDOW_COLUMNS, _WINDOW_KEY,
    _update_all(_WINDOW_COLUMNS, _WINDOW_KEY)
    + " WHERE reconciliation_windows.incarnation <> excluded.incarnation"
      " OR reconciliation_windows.revision <= excluded.revision",
    keep="latest:revision",
)

_DEAD_LETTER_COLUMNS = (
    "original_topic", "original_partition", "original_offset", "stage", "exception_class", "exception_message",
    "failed_at", "payload", "failed_at_ms", "original_key", "attempts", "reason", "headers",
    "dlq_partition", "dlq_offset",
)
_DEAD_LETTER_KEY = ("original_topic", "original_partition", "original_offset")
DEAD_LETTERS = Table("dead_letters", _DEAD_LETTER_COLUMNS, _DEAD_LETTER_KEY,
                     _update_all(_DEAD_LETTER_COLUMNS, _DEAD_LETTER_KEY))

SINK_OFFSETS = Table(
    "sink_offsets", ("topic", "partition", "next_offset", "cluster_id", "updated_at"), ("topic", "partition"),
    "DO UPDATE SET next_offset = excluded.next_offset, cluster_id = excluded.cluster_id, "
    "updated_at = excluded.updated_at "
    # never move backwards within one incarnation (a late flush after a rebalance)
    "WHERE sink_offsets.cluster_id <> excluded.cluster_id OR sink_offsets.next_offset < excluded.next_offset",
)

TABLES: tuple[Table, ...] = (PAYMENT_EVENTS, PAYMENTS, RECONCILIATION_WINDOWS, DEAD_LETTERS)


def offsets_upsert_sql(placeholder: str) -> str:
    return SINK_OFFSETS.insert_sql(placeholder)


@dataclass(frozen=True, slots=True)
class Adapters:
    """How one database wants timestamps and JSON values as parameters."""

    timestamp: Callable[[datetime], Any]
    json: Callable[[Any], Any]


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _clean(text: str) -> str:
    """Text PostgreSQL accepts: no NUL characters (SQLite would, but both must agree)."""
    return text.replace("\x00", "\\x00")


def event_row(e: Mapping[str, Any], ingested_at: Any, ingested_at_ms: int, a: Adapters) -> Row:
    """From a decoded `PaymentEvent` dict (Avro field names): the hot path skips building the dataclass.

    `ingested_at` is already adapted: it is the same for the whole batch.
    """
    occurred, received = e["occurred_at"], e["received_at"]
    return (
        e["event_key"], e["payment_id"], e["provider"], e["event_type"], e["kind"], e["status"], e["amount_minor"],
        e["currency"], a.timestamp(occurred), e["provider_status"], a.json(e["related_ids"]), e["envelope_id"],
        ingested_at, to_epoch_ms(occurred), ingested_at_ms, a.timestamp(received), to_epoch_ms(received),
        e["refunded_total_minor"], e["livemode"],
    )


def payment_row(s: Mapping[str, Any], incarnation: str, a: Adapters) -> Row:
    """From a decoded `PaymentState` dict (Avro field names)."""
    created, updated, status_at = s["created_at"], s["updated_at"], s["status_at"]
    return (
        s["payment_id"], s["provider"], s["status"], s["amount_minor"], s["captured_minor"], s["refunded_minor"],
        s["disputed_minor"], s["currency"], a.timestamp(created), a.timestamp(updated), s["version"],
        s["last_event_key"], to_epoch_ms(created), to_epoch_ms(updated), a.timestamp(status_at),
        to_epoch_ms(status_at), a.json(s["flags"]), incarnation,
        s.get("authorized_minor", 0), s.get("refund_pending_minor", 0), s.get("dispute_status"),
        s.get("dispute_count", 0), orjson.dumps(sorted(e["event_key"] for e in s["history"])).decode(), None,
        s.get("fold_revision", 0),
    )


def window_row(w: ReconciliationWindow, incarnation: str, a: Adapters) -> Row:
    mismatches = [
        {"payment_id": m.payment_id, "ledger_minor": m.ledger_minor, "provider_minor": m.provider_minor}
        for m in w.amount_mismatches
    ]
    return (
        w.provider, w.currency, a.timestamp(w.window_start), a.timestamp(w.window_end), w.captured_minor,
        w.refunded_minor, w.disputed_minor, w.failed_count, w.net_minor, w.ledger_expected_minor,
        w.provider_confirmed_minor, a.json(w.missing_at_provider), a.json(w.unexpected_at_provider),
        a.json(mismatches), w.late_events, to_epoch_ms(w.window_start), to_epoch_ms(w.window_end),
        a.json(w.counts_by_status), a.json(w.sums_by_status), len(w.missing_at_provider),
        len(w.unexpected_at_provider), len(mismatches), w.is_correction, w.revision, incarnation,
    )


def dead_letter_row(
    *,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    dlq_topic: str,
    dlq_partition: int,
    dlq_offset: int,
    timestamp: datetime,
    a: Adapters,
) -> Row:
    """A dead letter's row; one without valid DLQ headers is keyed by its own DLQ position."""
    text_headers = {_clean(k): _clean(v.decode("utf-8", "backslashreplace")) for k, v in headers}
    original_key = _clean(key.decode("utf-8", "backslashreplace")) if key is not None else None
    try:
        info = parse_dlq_headers(headers)
    except (KeyError, ValueError):
        topic, partition, offset = dlq_topic, dlq_partition, dlq_offset
        stage, cls, message, failed_at, attempts, reason = (
            "unknown", "", "record on the dead-letter topic without dlq.* headers", timestamp, 1, None)
    else:
        topic, partition, offset = info.original_topic, info.original_partition, info.original_offset
        stage, cls, message, failed_at = info.stage, info.exception_class, info.exception_message, info.failed_at
        attempts, reason = info.attempts, info.reason
        if failed_at.tzinfo is None:  # a foreign producer's naive time: read it as UTC like ours
            failed_at = failed_at.replace(tzinfo=UTC)
    return (
        _clean(topic), partition, offset, _clean(stage), _clean(cls), _clean(message), a.timestamp(failed_at), value,
        to_epoch_ms(failed_at), original_key, attempts, _clean(reason) if reason is not None else None,
        a.json(text_headers), dlq_partition, dlq_offset,
    )
