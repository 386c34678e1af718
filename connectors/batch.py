"""Turn a buffer of consumed records into table rows, next offsets and rejects.

Runs on the database thread (decoding is CPU work the event loop should not do).
A record that cannot be decoded is rejected here, before the database sees it,
and so is one whose ids exceed `MAX_ID_CHARS` (the contract's bound; the
normalizers enforce it too, but the sink must not depend on them: PostgreSQL
cannot index a 10 KB id and SQLite would silently keep it). A tombstone (no value)
on a compacted topic is skipped. Either way its offset advances, so the batch
commits past it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.base import Rejected, SinkRecord, TopicPartitionKey
from connectors.exceptions import IdTooLongError
from connectors.tables import (
    DEAD_LETTERS,
    PAYMENT_EVENTS,
    PAYMENTS,
    RECONCILIATION_WINDOWS,
    Adapters,
    Row,
    Table,
    dead_letter_row,
    event_row,
    payment_row,
    window_row,
)
from schemas.clock import from_epoch_ms, to_epoch_ms
from schemas.exceptions import SchemaError
from schemas.serde import SchemaRegistry, payment_event_serde, payment_state_serde, reconciliation_serde
from schemas.topics import TopicCatalog

__all__ = ["MAX_ID_CHARS", "Batch", "BatchBuilder", "TableRows"]

MAX_ID_CHARS = 255
"""Longest id (payment id, event key) the sink stores; the same on both backends."""


def _bounded(values: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        value = values.get(name)
        if isinstance(value, str) and len(value) > MAX_ID_CHARS:
            raise IdTooLongError(f"{name} is {len(value)} characters; ids are bounded to {MAX_ID_CHARS}")
    return values


@dataclass(slots=True)
class TableRows:
    """Rows for one table in offset order, each beside the record it came from."""

    table: Table
    rows: list[Row] = field(default_factory=list)
    sources: list[SinkRecord] = field(default_factory=list)


@dataclass(slots=True)
class Batch:
    tables: dict[str, TableRows]
    rejected: list[Rejected]
    offsets: dict[TopicPartitionKey, int]
    records: int
    skipped: int = 0
    diverged: int = 0
    """Payment states that disagreed with the stored row (`connectors/divergence.py`)."""


class BatchBuilder:
    """Knows which topic feeds which table and how to decode it."""

    def __init__(self, catalog: TopicCatalog, registry: SchemaRegistry | None = None) -> None:
        events, states, windows = (payment_event_serde(registry), payment_state_serde(registry),
                                   reconciliation_serde(registry))
        self.dlq_topic = catalog.dlq
        self.topics = (catalog.events, catalog.state, catalog.reconciliation, catalog.dlq)

        def event(r: SinkRecord, value: bytes, ctx: _Context) -> Row:
            values = _bounded(events.decode_dict(value), "event_key", "payment_id")
            return event_row(values, ctx.ingested_at, ctx.ingested_at_ms, ctx.adapters)

        def state(r: SinkRecord, value: bytes, ctx: _Context) -> Row:
            values = _bounded(states.decode_dict(value), "payment_id", "last_event_key")
            return payment_row(values, ctx.incarnation, ctx.adapters)

        def window(r: SinkRecord, value: bytes, ctx: _Context) -> Row:
            return window_row(windows.decode(value), ctx.incarnation, ctx.adapters)

        def dead_letter(r: SinkRecord, value: bytes, ctx: _Context) -> Row:
            when = from_epoch_ms(r.timestamp_ms) if r.timestamp_ms > 0 else ctx.now
            return dead_letter_row(key=r.key, value=value, headers=r.headers, dlq_topic=r.topic,
                                   dlq_partition=r.partition, dlq_offset=r.offset, timestamp=when, a=ctx.adapters)

        self._routes: dict[str, tuple[Table, Callable[[SinkRecord, bytes, _Context], Row]]] = {
            catalog.events: (PAYMENT_EVENTS, event),
            catalog.state: (PAYMENTS, state),
            catalog.reconciliation: (RECONCILIATION_WINDOWS, window),
            catalog.dlq: (DEAD_LETTERS, dead_letter),
        }

    def build(self, records: Sequence[SinkRecord], *, incarnation: str, adapters: Adapters, now: datetime) -> Batch:
        ctx = _Context(adapters, incarnation, now, adapters.timestamp(now), to_epoch_ms(now))
        tables = {t.name: TableRows(t) for t, _ in self._routes.values()}
        batch = Batch(tables=tables, rejected=[], offsets={}, records=len(records))
        offsets = batch.offsets
        for record in records:
            tp = (record.topic, record.partition)
            if offsets.get(tp, -1) <= record.offset:
                offsets[tp] = record.offset + 1
            route = self._routes.get(record.topic)
            if route is None:
                batch.rejected.append(Rejected(record, SchemaError(f"no table for topic {record.topic!r}")))
                continue
            table, convert = route
            if record.value is None and table is not DEAD_LETTERS:
                batch.skipped += 1
                continue
            try:
                row = convert(record, record.value or b"", ctx)
            except (SchemaError, ValueError, TypeError, KeyError, OverflowError) as exc:
                batch.rejected.append(Rejected(record, exc))
                continue
            target = tables[table.name]
            target.rows.append(row)
            target.sources.append(record)
        return batch


@dataclass(frozen=True, slots=True)
class _Context:
    """What every row of one batch shares."""

    adapters: Adapters
    incarnation: str
    now: datetime
    ingested_at: Any
    ingested_at_ms: int
