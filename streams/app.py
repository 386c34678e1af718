"""The Faust application factory: topics, tables, agents, timers and web views.

Nothing connects here; `paystream worker` starts it with a Faust `Worker`.

Every agent runs its batches through `streams.batches.run_batch` under mode's `CrashingSupervisor`:
a batch that fails to deliver stops the worker before Faust commits any of it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import faust
from mode import CrashingSupervisor
from prometheus_client import CollectorRegistry

from paystream.core.broker import faust_broker_options, worker_fetch_max_wait_ms
from paystream.core.settings import Settings
from paystream.core.tracing import setup_tracing
from schemas.registry import HttpSchemaRegistry
from schemas.serde import envelope_serde, payment_event_serde, payment_state_serde
from streams.batches import batches, run_batch
from streams.compat import install_embedded_broker_compat
from streams.dlq import DeadLetters
from streams.fetch_wait import use_worker_fetch_wait
from streams.flow import use_keeping_flow_control
from streams.metrics import WorkerMetrics
from streams.ops import register_ops
from streams.partitioned import PartitionedTable
from streams.pipeline import Pipeline
from streams.producer import use_idempotent_producer
from streams.rebalance import OrderedTableManager, use_snapshot_fetches
from streams.reconcile import register_reconciliation
from streams.reconcile.views import register_disabled_reconciliation_views, register_reconciliation_views
from streams.store import STORE_URL
from streams.views import protected, register_views
from streams.worker import Worker

__all__ = ["Worker", "compose", "create_worker"]

log = logging.getLogger("paystream.streams")


def app_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}paystream-worker"


def worker_datadir(settings: Settings) -> Path:
    return settings.data_dir / "worker" / (settings.worker_id or str(settings.worker_port))


def create_worker(settings: Settings) -> Worker:
    embedded = settings.uses_embedded_broker
    if embedded:
        install_embedded_broker_compat()
    catalog = settings.topics
    app = faust.App(
        app_id(settings),
        broker=f"kafka://{settings.kafka_bootstrap}",
        store=STORE_URL,  # the worker's own RocksDB store (`streams/store.py`)
        datadir=str(worker_datadir(settings)),
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_port=settings.worker_port,
        web_bind="0.0.0.0",  # noqa: S104 - the worker web server serves ops views and routed lookups
        web_host="127.0.0.1" if embedded else None,
        producer_linger=0.001,
        stream_wait_empty=True,  # a rebalance waits for the batch in hand (state ownership is checked per batch)
        table_standby_replicas=settings.table_standby_replicas,
        TableManager=OrderedTableManager,  # the end of a rebalance drops no fetched record (`streams/rebalance.py`)
        **faust_broker_options(embedded=embedded, processing_guarantee=settings.processing_guarantee,
                               session_timeout_ms=settings.group_session_timeout_ms),
    )
    use_keeping_flow_control(app)  # before any stream exists: Faust's recovery would drop fetched records
    use_idempotent_producer(app, embedded=embedded)  # a retried batch is never stored twice on Apache Kafka
    use_snapshot_fetches(app)  # a fetch while Faust pauses partitions drops no record (`streams/rebalance.py`)
    use_worker_fetch_wait(app, worker_fetch_max_wait_ms(embedded=embedded))  # not Faust's 1.5 s (`fetch_wait.py`)
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    schema_registry = HttpSchemaRegistry(settings.schema_registry_url) if settings.schema_registry_url else None
    serdes = (envelope_serde(schema_registry), payment_event_serde(schema_registry),
              payment_state_serde(schema_registry))
    if schema_registry is not None:  # at startup, before the worker serves: no encode waits on the registry
        for serde in serdes:
            serde.register()

    # One agent reads both: the only writer of the payment-state table (`streams/pipeline.py`)
    inputs = app.topic(catalog.raw, catalog.state_input, key_type=bytes, value_type=bytes,
                       partitions=settings.partitions)
    dedup_table = app.Table("dedup", key_type=bytes, value_type=bytes, partitions=settings.partitions)
    state_table = app.Table("payment-state", key_type=bytes, value_type=bytes, partitions=settings.partitions)
    dead_letters = DeadLetters(app, catalog.dlq, metrics=metrics)
    pipeline = Pipeline(
        app,
        events_topic=catalog.events,
        state_topic=catalog.state,
        state_input_topic=catalog.state_input,
        dedup=PartitionedTable(app, dedup_table),
        states=PartitionedTable(app, state_table),
        dead_letters=dead_letters,
        metrics=metrics,
        envelope_serde=serdes[0],
        event_serde=serdes[1],
        state_serde=serdes[2],
        dedup_ttl_s=settings.dedup_ttl_s,
        state_retention_s=settings.state_retention_s,
        state_sweep_every_s=settings.state_sweep_interval_s,
        held_release_s=settings.held_release_s,
        partitions=settings.partitions,
        tracer=setup_tracing(settings.otlp_endpoint, "paystream-worker"),
    )
    batch_size, within = settings.stream_batch_size, settings.stream_batch_ms / 1000

    @app.agent(inputs, name="payments", supervisor_strategy=CrashingSupervisor, concurrency=1)
    async def payments(stream: Any) -> None:
        async for events in batches(stream, batch_size, within):
            await run_batch(events, pipeline.process)

    return compose(Worker(app, settings, pipeline, registry, state_table, dedup_table))


def compose(worker: Worker) -> Worker:
    """The worker's parts, assembled in this one place: reconciliation, the ops views and the console.

    The parts take the `Worker` they are registered on and never import this module."""
    if worker.settings.reconciliation:
        worker.reconciliation = register_reconciliation(worker)
        register_reconciliation_views(worker, worker.reconciliation)
    else:
        register_disabled_reconciliation_views(worker)
    register_views(worker)
    register_ops(worker, protected)
    return worker

