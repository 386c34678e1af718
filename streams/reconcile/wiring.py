"""Faust wiring: two tables, the internal placements topic, two agents, the idle timer, the feed, the views.

Faust's windowed tables (`Table(...).tumbling(...)`) are not used for the windows:
their `table[key] += x` adds again when at-least-once delivery replays a record,
a window is "closed" by a wall-clock cleanup timer against the newest timestamp
one partition has seen (no watermark across partitions, no grace, nothing
persisted about having emitted), and each write costs a changelog send of its
own. The windows here are plain Faust tables (RocksDB + changelog, recovered and
standby-replicated by Faust) written in batches through `PrefixTable`, holding
one upserted placement per payment and window, closed by an event-time watermark.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mode import CrashingSupervisor

from paystream.core.broker import consumer_fetch_options
from schemas.registry import HttpSchemaRegistry
from schemas.serde import ledger_serde, reconciliation_serde
from streams.batches import batches, run_batch
from streams.reconcile.aggregate import ReconcileMetrics, WindowAggregator
from streams.reconcile.feed import WindowFeed
from streams.reconcile.join import PaymentJoin
from streams.reconcile.model import WindowSpec
from streams.reconcile.store import PrefixTable

if TYPE_CHECKING:
    from streams.worker import Worker

__all__ = ["Reconciliation", "register"]

log = logging.getLogger("paystream.streams.reconcile")

"""A source partition with nothing to read for this long (wall time) stops holding windows open."""
IDLE_CHECK_S = 5.0
BATCH_WAIT_S = 0.25
"""Longest wait to fill a batch. Reconciliation is not on the latency path (a window closes an hour
later), and fuller batches merge a payment's events into one placement and share the ticks and
offset bookkeeping each batch costs."""


@dataclass
class Reconciliation:
    """What views, tests and the benchmark reach for."""

    spec: WindowSpec
    join: PaymentJoin
    windows: WindowAggregator
    feed: WindowFeed
    placements_topic: str
    join_table: Any
    window_table: Any


def register(worker: Worker) -> Reconciliation:
    app, settings = worker.app, worker.settings
    catalog = settings.topics
    partitions = settings.partitions
    registry = HttpSchemaRegistry(settings.schema_registry_url) if settings.schema_registry_url else None
    windows_serde = reconciliation_serde(registry)
    if registry is not None:  # at startup, before serving: the window stage never waits on the registry
        windows_serde.register()
    spec = WindowSpec.from_seconds(settings.recon_window_s, settings.recon_grace_s, settings.recon_retention_s)
    placements_name = f"{app.conf.id}-reconcile-placements"
    inputs = app.topic(catalog.events, catalog.ledger, key_type=bytes, value_type=bytes)
    placements = app.topic(placements_name, key_type=bytes, value_type=bytes, partitions=partitions, internal=True)
    join_table = app.Table("reconcile-payments", key_type=bytes, value_type=bytes, partitions=partitions)
    window_table = app.Table("reconcile-windows", key_type=bytes, value_type=bytes, partitions=partitions)
    dead_letters = worker.pipeline.dead_letters

    def producer() -> Any:
        return app.producer

    join = PaymentJoin(store=PrefixTable(app, join_table), producer=producer, events_topic=catalog.events,
                       ledger_topic=catalog.ledger, placements_topic=placements_name,
                       placement_partitions=partitions, spec=spec, event_serde=worker.pipeline.event_serde,
                       ledger_serde=ledger_serde(registry), dead_letters=dead_letters)
    windows = WindowAggregator(store=PrefixTable(app, window_table), producer=producer,
                               output_topic=catalog.reconciliation, sources=partitions, spec=spec,
                               serde=windows_serde, dead_letters=dead_letters,
                               metrics=ReconcileMetrics(worker.registry))
    feed = WindowFeed(windows_serde)
    batch_size, within = settings.stream_batch_size, max(settings.stream_batch_ms / 1000, BATCH_WAIT_S)

    @app.agent(inputs, name="reconcile-join", supervisor_strategy=CrashingSupervisor)
    async def reconcile_join(stream: Any) -> None:
        async for events in batches(stream, batch_size, within):
            await run_batch(events, join.process)

    @app.agent(placements, name="reconcile-windows", supervisor_strategy=CrashingSupervisor)
    async def reconcile_windows(stream: Any) -> None:
        async for events in batches(stream, batch_size, within):
            await run_batch(events, windows.process)

    @app.timer(interval=IDLE_CHECK_S)  # type: ignore[untyped-decorator]
    async def reconcile_idle() -> None:
        active = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == catalog.events}
        await join.announce_idle(active, idle_after_s=worker.settings.recon_idle_s)

    @app.task  # type: ignore[untyped-decorator]
    async def reconcile_feed() -> None:
        while True:
            try:
                await feed.follow(settings.kafka_bootstrap, catalog.reconciliation, range(partitions),
                                  **consumer_fetch_options(embedded=settings.uses_embedded_broker))
            except asyncio.CancelledError:
                raise
            except Exception:  # the views must not take the worker down: try again
                log.warning("reconciliation feed restarting", exc_info=True)
                await asyncio.sleep(1.0)

    return Reconciliation(spec, join, windows, feed, placements_name, join_table, window_table)
