"""The sink process: consume the output topics in batches and land them with their offsets.

Progress lives in the database (`sink_offsets`), never in Kafka's group commit:
every assigned partition is paused until it has been sought to its stored offset,
and a rebalance drops the uncommitted buffer of the revoked partitions, which are
then simply read again. One flush is in flight at a time while the loop keeps
fetching the next batch. When the database is down the runner pauses every
partition, retries the same batch with capped, jittered backoff, reports
not-ready and resumes exactly where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from sqlalchemy.exc import OperationalError as SqlAlchemyOperationalError

from connectors.backoff import Backoff
from connectors.base import Rejected, SinkRecord
from connectors.database import DatabaseSink
from connectors.exceptions import SinkBackpressureError, SinkConfigError
from connectors.metrics import MetricsServer, SinkMetrics
from connectors.migrations import check_schema, upgrade
from connectors.targets import create_sink
from paystream.core.broker import CompatConsumer, consumer_group_options, fetch_cluster_id, producer_options
from paystream.core.settings import Settings
from schemas.dlq import dlq_headers
from schemas.registry import HttpSchemaRegistry

__all__ = ["SWITCH_INTERVAL_S", "SinkRunner", "run_sink"]

log = logging.getLogger("paystream.sink")
T = TypeVar("T")

SHUTDOWN_GRACE_S = 10.0
SWITCH_INTERVAL_S = 0.001
"""GIL switch interval for a sink process: the database thread waits on I/O several times per batch and must
get the GIL back quickly from the consumer's record parsing; the 5 ms default costs ~15 % throughput."""


class _Stopped(Exception):
    """The stop event was set while waiting for the database."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: SinkRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self._runner.revoked(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self._runner.assigned(assigned)


class SinkRunner:
    """One consumer, one sink, one DLQ producer, one metrics server; `run(stop)` until `stop` is set."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: SinkMetrics | None = None,
        serve_metrics: bool = True,
        group_id: str | None = None,
    ) -> None:
        if not settings.kafka_bootstrap:
            raise SinkConfigError(
                "PAYSTREAM_KAFKA_BOOTSTRAP is empty: the sink does not start a broker. Start one with "
                "`paystream broker` (or run everything with `paystream dev`), or set PAYSTREAM_KAFKA_BOOTSTRAP."
            )
        self.settings = settings
        self.catalog = settings.topics
        self.topics = (self.catalog.events, self.catalog.state, self.catalog.reconciliation, self.catalog.dlq)
        self.metrics = metrics or SinkMetrics()
        self.server = MetricsServer(self.metrics, port=settings.sink_metrics_port) if serve_metrics else None
        registry = HttpSchemaRegistry(settings.schema_registry_url) if settings.schema_registry_url else None
        self.sink: DatabaseSink = create_sink(settings.resolved_sink_url, self.catalog, registry=registry,
                                              dead_letter=self._publish_dead_letters)
        self.consumer = CompatConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=group_id or f"{settings.topic_prefix}paystream-sink",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.sink_batch_size,
            embedded=settings.uses_embedded_broker,
            **consumer_group_options(embedded=settings.uses_embedded_broker,  # quirk 5: short group timeouts
                                     session_timeout_ms=settings.group_session_timeout_ms),
        )
        # Dead letters are keyed by their original position, so a duplicate is harmless; idempotent on Apache
        # Kafka, not on the embedded broker, which cannot do it for aiokafka (quirk 1).
        self.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap,
                                         **producer_options(embedded=settings.uses_embedded_broker))
        self._stop = asyncio.Event()
        self._flushing: asyncio.Task[None] | None = None
        self._to_seek: set[TopicPartition] = set()
        self._committed: dict[TopicPartition, int] = {}
        self._paused_since: float | None = None
        self._cluster_id = ""
        self._last_lag = 0.0

    @property
    def ready(self) -> bool:
        return self.metrics.ready

    # -- rebalance ---------------------------------------------------------------

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        dropped = self.sink.discard((tp.topic, tp.partition) for tp in partitions)
        self._to_seek.difference_update(partitions)
        for tp in partitions:
            self._committed.pop(tp, None)
        if dropped:
            log.info("partitions revoked; uncommitted records will be read again", extra={"dropped": dropped})

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        if partitions:
            self.consumer.pause(*partitions)  # nothing is read before the seek to the stored offset
            self._to_seek.update(partitions)

    async def _apply_seeks(self) -> None:
        try:
            cluster_id = await fetch_cluster_id(self.settings.kafka_bootstrap)
        except (KafkaError, OSError) as exc:
            log.warning("cannot read the broker's cluster id; retrying", extra={"error": repr(exc)})
            await self._sleep(1.0)
            return
        if cluster_id != self._cluster_id:
            if await self._with_db(lambda: self.sink.use_incarnation(cluster_id)):
                self.metrics.incarnation_resets.inc()
            self._cluster_id = cluster_id
        stored = await self._with_db(self.sink.stored_offsets)
        partitions = self._to_seek & self.consumer.assignment()  # after the awaits: a rebalance may have run
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)
                self._committed[tp] = offset
        self._to_seek.difference_update(partitions)
        if partitions and self._paused_since is None:
            self.consumer.resume(*partitions)
        log.info("partitions assigned and positioned from sink_offsets",
                 extra={"partitions": len(partitions), "stored": len(stored)})

    # -- the loop ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until `stop` is set, then flush, commit and close everything."""
        if stop is not None:
            self._stop = stop
        try:
            if self.server is not None:
                await self.server.start()
            await self._startup()
            await self._loop()
        except _Stopped:
            log.info("stopped while waiting for the database; uncommitted records will be read again")
        finally:
            await self._shutdown()

    async def _startup(self) -> None:
        url = self.settings.resolved_sink_url
        backoff = Backoff()
        while True:
            try:
                await asyncio.to_thread(check_schema, url)
                break
            except SqlAlchemyOperationalError as exc:
                self.metrics.db_errors.labels("unavailable").inc()
                log.warning("database unavailable at start; retrying", extra={"error": str(exc.orig)})
                await self._sleep(backoff.next_delay())
                if self._stop.is_set():
                    raise _Stopped from exc
        await self.sink.start()
        self._cluster_id = await self._broker_cluster_id()
        if await self._with_db(lambda: self.sink.use_incarnation(self._cluster_id)):
            self.metrics.incarnation_resets.inc()
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe(topics=list(self.topics), listener=_Listener(self))
        self.metrics.set_ready(True)
        log.info("sink started", extra={"backend": self.sink.backend, "topics": list(self.topics),
                                        "batch_size": self.settings.sink_batch_size,
                                        "batch_ms": self.settings.sink_batch_ms})

    async def _broker_cluster_id(self) -> str:
        """The broker's cluster id, waiting (with backoff) for a broker that is not up yet."""
        backoff = Backoff(max_s=10.0)
        while True:
            try:
                return await fetch_cluster_id(self.settings.kafka_bootstrap)
            except (KafkaError, OSError) as exc:
                log.warning("Kafka unreachable at start; retrying",
                            extra={"bootstrap": self.settings.kafka_bootstrap, "error": repr(exc)})
                await self._sleep(backoff.next_delay())
                if self._stop.is_set():
                    raise _Stopped from exc

    async def _loop(self) -> None:
        """Poll, buffer, and keep one flush in flight, so decoding and writing overlap with fetching."""
        batch_size, batch_s = self.settings.sink_batch_size, self.settings.sink_batch_ms / 1000
        first_at: float | None = None
        while not self._stop.is_set():
            if self._to_seek:
                await self._settle()  # stored offsets must include the flush in flight
                await self._apply_seeks()
            wait_s = batch_s if first_at is None else max(0.0, first_at + batch_s - time.monotonic())
            data = await self.consumer.getmany(timeout_ms=int(wait_s * 1000),
                                               max_records=max(1, batch_size - self.sink.buffered))
            self._add(data)
            if self.sink.buffered and first_at is None:
                first_at = time.monotonic()
            due = self.sink.buffered >= batch_size or (first_at is not None and time.monotonic() - first_at >= batch_s)
            if due and await self._previous_flush_done(wait_s=batch_s):
                self._flushing = asyncio.create_task(self._flush())
                first_at = None
            self._update_lag()

    async def _previous_flush_done(self, *, wait_s: float) -> bool:
        """True when no flush is in flight (re-raising what a finished one raised); waits up to `wait_s` for it."""
        task = self._flushing
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=wait_s)
        if task is None or not task.done():
            return task is None
        self._flushing = None
        task.result()
        return True

    async def _settle(self) -> None:
        """Wait for the flush in flight, polling the (then paused) consumer so the group keeps us."""
        task = self._flushing
        while task is not None and not task.done():
            await asyncio.wait({task}, timeout=1.0)
            if not task.done() and self.consumer.assignment():
                self._add(await self.consumer.getmany(timeout_ms=0))
        self._flushing = None
        if task is not None:
            task.result()

    def _add(self, data: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in data.items():
            if tp in self._to_seek:
                continue  # fetched before the pause; the seek will read it again
            self.sink.extend(SinkRecord(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()),
                                        r.timestamp or 0) for r in records)

    async def _flush(self, *, shutdown: bool = False) -> None:
        # The loop keeps polling while this runs, so no keep-alive polling in here.
        result = await self._with_db(self.sink.flush, shutdown=shutdown, keep_alive=False)
        for (topic, partition), offset in result.offsets.items():
            self._committed[TopicPartition(topic, partition)] = offset
        if result.records:
            committed_ms = time.time() * 1000
            for received in result.received_ms:
                self.metrics.end_to_end.observe(max(0, committed_ms - received) / 1000)
            self.metrics.records.inc(result.records)
            self.metrics.batch_seconds.observe(result.seconds)
            self.metrics.batch_records.observe(result.records)
            for table, rows in result.rows.items():
                self.metrics.rows_written.labels(table).inc(rows)
            if result.rejected:
                self.metrics.db_errors.labels("rejected").inc(len(result.rejected))
            if result.diverged:
                self.metrics.diverged_states.inc(result.diverged)

    async def _with_db(self, op: Callable[[], Awaitable[T]], *, shutdown: bool = False,
                       keep_alive: bool = True) -> T:
        """Await `op()`; on backpressure pause everything, back off and retry until it works (or stop)."""
        backoff = Backoff()
        gave_up_at = time.monotonic() + SHUTDOWN_GRACE_S
        while True:
            try:
                result = await op()
            except SinkBackpressureError as exc:
                self.metrics.db_errors.labels("unavailable").inc()
                self._pause(str(exc))
                if (shutdown and time.monotonic() > gave_up_at) or (self._stop.is_set() and not shutdown):
                    raise _Stopped from exc
                await self._sleep(max(backoff.next_delay(), exc.retry_after_s), keep_alive=keep_alive,
                                  interruptible=not shutdown)
                continue
            self._unpause()
            return result

    def _pause(self, reason: str) -> None:
        if self._paused_since is not None:
            return
        self._paused_since = time.monotonic()
        self.metrics.set_ready(False)
        self.metrics.paused.set(1)
        if self.consumer.assignment():
            self.consumer.pause(*self.consumer.assignment())
        log.warning("database unavailable: consumption paused, retrying with backoff", extra={"error": reason})

    def _unpause(self) -> None:
        if self._paused_since is None:
            return
        paused_s = time.monotonic() - self._paused_since
        self._paused_since = None
        self.metrics.paused_seconds.inc(paused_s)
        self.metrics.paused.set(0)
        self.metrics.set_ready(True)
        resumable = self.consumer.assignment() - self._to_seek
        if resumable:
            self.consumer.resume(*resumable)
        log.info("database available again: consumption resumed", extra={"paused_s": round(paused_s, 3)})

    async def _sleep(self, seconds: float, *, keep_alive: bool = False, interruptible: bool = True) -> None:
        """Sleep, returning early on stop when `interruptible`; with `keep_alive`, poll the (paused)
        consumer so the group does not drop us for exceeding max.poll.interval."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if interruptible and self._stop.is_set():
                return
            if keep_alive and self.consumer.assignment():
                self._add(await self.consumer.getmany(timeout_ms=0))
            step = min(left, 1.0)
            if interruptible:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=step)
            else:
                await asyncio.sleep(step)

    def _update_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < 1.0:
            return
        self._last_lag = now
        lag: dict[str, int] = dict.fromkeys(self.topics, 0)
        for tp in self.consumer.assignment():
            high, done = self.consumer.highwater(tp), self._committed.get(tp)
            if high is not None and done is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - done)
        for topic, value in lag.items():
            self.metrics.lag.labels(topic).set(value)

    async def _publish_dead_letters(self, rejected: Sequence[Rejected]) -> None:
        futures = []
        for item in rejected:
            r = item.record
            log.warning("record rejected; sent to the dead-letter topic",
                        extra={"topic": r.topic, "partition": r.partition, "offset": r.offset,
                               "error_class": type(item.error).__name__, "error": str(item.error)[:500]})
            headers = dlq_headers(original_topic=r.topic, original_partition=r.partition, original_offset=r.offset,
                                  stage="sink", error=item.error)
            futures.append(await self.producer.send(self.catalog.dlq, key=r.key, value=r.value, headers=headers))
            self.metrics.dead_letters.labels(r.topic).inc()
        await asyncio.gather(*futures)

    async def _shutdown(self) -> None:
        self.metrics.set_ready(False)
        try:
            try:
                await self._settle()
                if self.sink.buffered and self._paused_since is None:
                    await self._flush(shutdown=True)
            except _Stopped:
                log.warning("final flush gave up; uncommitted records will be read again",
                            extra={"pending": self.sink.pending})
            except Exception:  # already stopping: report it, the records are simply read again next time
                log.exception("final flush failed; uncommitted records will be read again")
        finally:
            # consumer first (it leaves the group), then producer, then database; each is safe if never started
            await self.consumer.stop()
            await self.producer.stop()
            await self.sink.stop()
            if self.server is not None:
                await self.server.stop()
            log.info("sink stopped")


async def run_sink(settings: Settings, *, stop: asyncio.Event | None = None, migrate: bool = False) -> None:
    """Run the sink until `stop` is set (or the task is cancelled); `migrate` applies migrations first."""
    runner = SinkRunner(settings)
    if migrate:
        await asyncio.to_thread(upgrade, settings.resolved_sink_url)
    await runner.run(stop)
