"""The two processing stages, one batch at a time, in one agent: the only writer of the state table.

Stage 1 (raw → events): decode the envelope, dedup by event key, normalize, and
emit one `PaymentEvent` keyed by payment to payments.events.v1; then apply it to
the payment's state in the same batch when this worker owns the payment's partition
and its table is restored, or hand it to the owner through the internal
payments.state-input.v1 topic. Stage 2 applies what arrives on that topic; it sends an
event back to it when it reaches a worker whose table is not ready (a rebalance is
under way), so the owner applies it after recovery.

One agent consumes both topics (`app.py`), so each batch is raw and state-input records
together and `process` is the one writer of the payment-state table on this worker:
raw partition p, state-input partition p and state partition p are co-assigned, so each
state partition has exactly one writer, which queues a batch's changelog records before
it takes the next batch (no lock; the changelog keeps the order of the local writes).
Each payment's state is written and emitted once per batch.

Both stages write their tables directly (see `partitioned.py`), send every output
through the worker's producer, and wait for the acknowledgements before taking the
next batch, so Faust commits an input offset only after everything it caused is
stored. Anything that fails goes to the dead-letter topic. The state stage itself
lives in `state_stage.py`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from paystream.core.tracing import Tracer
from schemas.clock import to_epoch_ms
from schemas.dlq import ATTEMPTS, REPLAYED_FROM
from schemas.exceptions import DecodeError
from schemas.records import PaymentEvent, PaymentState
from schemas.serde import AvroSerde
from schemas.topics import partition_for
from streams.dedup import Sighting, Verdict, body_digest, is_expired, judge
from streams.dlq import DeadLetters, record_headers
from streams.held_release import DEFAULT_HELD_RELEASE_S
from streams.identity import identify
from streams.metrics import WorkerMetrics
from streams.normalize import NormalizeError, StandardMappings, normalize
from streams.partitioned import PartitionedTable
from streams.state_expiry import DEFAULT_RETENTION_S, SWEEP_EVERY_S
from streams.state_stage import StateInput, StateStage
from streams.sweep import Sweeper

__all__ = ["SOURCE_HEADER", "DedupStats", "Pipeline"]

SOURCE_HEADER = "paystream.source"

log = logging.getLogger("paystream.streams")


_CARRIED = frozenset({"traceparent", ATTEMPTS, REPLAYED_FROM})
"""Raw-record headers an event keeps: its trace, and that it is a replayed dead letter (how often it failed)."""
DEDUP_SWEEP_VISITS = 4
"""Dedup entries a batch looks at for expiry per sighting it writes, in its own partitions. The sweep then
walks each partition four times as fast as sightings arrive, so a partition holds at most ~4/3 of a TTL's
worth of them whatever the traffic, and the cost is a few RocksDB reads per event. (A timer that scanned
every table whole each 300 s did so in proportion to the table: at 500 events/s and the 3.5-day TTL,
150 million entries per scan, more than the worker could read in the interval.)"""
DEDUP_GAUGE_EVERY_S = 10.0
"""How often a batch refreshes `paystream_worker_dedup_keys` (RocksDB's estimate, read per partition)."""


async def _delivered(futures: list[asyncio.Future[Any]]) -> None:
    """Wait for every acknowledgement; the first failure propagates, and the batch must not be acknowledged
    (`streams/app.py` stops the worker before Faust commits it)."""
    if futures:
        await asyncio.gather(*futures)


@dataclass(slots=True)
class _Normalized:
    """What stage 1 leaves for after the acknowledgements: sightings to write, and its metrics."""

    writes: dict[int, dict[bytes, bytes | None]]
    to_state: list[StateInput]
    verdicts: Counter[str]
    emitted: Counter[tuple[str, str, str]]


@dataclass
class DedupStats:
    new: int = 0
    replayed: int = 0
    duplicates: int = 0
    conflicts: int = 0
    expired: int = 0
    watermark_ms: dict[int, int] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float:
        seen = self.new + self.replayed + self.duplicates + self.conflicts
        return self.duplicates / seen if seen else 0.0


class Pipeline:
    """Holds the serdes, tables and helpers both stages share; Faust wiring lives in `app.py`."""

    def __init__(
        self,
        app: Any,
        *,
        events_topic: str,
        state_topic: str,
        state_input_topic: str,
        dedup: PartitionedTable,
        states: PartitionedTable,
        dead_letters: DeadLetters,
        metrics: WorkerMetrics,
        envelope_serde: AvroSerde[Any],
        event_serde: AvroSerde[PaymentEvent],
        state_serde: AvroSerde[PaymentState],
        dedup_ttl_s: int,
        partitions: int,
        mappings: StandardMappings | None = None,
        tracer: Tracer | None = None,
        state_retention_s: int = DEFAULT_RETENTION_S,
        state_sweep_every_s: float = SWEEP_EVERY_S,
        held_release_s: int = DEFAULT_HELD_RELEASE_S,
    ) -> None:
        self.app = app
        self.events_topic = events_topic
        self.state_topic = state_topic
        self.state_input_topic = state_input_topic
        self.dedup = dedup
        self.states = states
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.envelope_serde = envelope_serde
        self.event_serde = event_serde
        self.state_serde = state_serde
        self.dedup_ttl_s = dedup_ttl_s
        self.partitions = partitions
        self.mappings = mappings
        self.tracer = tracer or Tracer()
        self.stats = DedupStats()
        self.processed = {"raw": 0, "events": 0}
        self.dedup_sweeper = Sweeper(prefix=b"", every_s=0.0)  # paced by sightings written, not by time
        self._dedup_gauge_at = -DEDUP_GAUGE_EVERY_S
        self.state_stage = StateStage(app, events_topic=events_topic, state_topic=state_topic,
                                      state_input_topic=state_input_topic, states=states, dead_letters=dead_letters,
                                      metrics=metrics, event_serde=event_serde, state_serde=state_serde,
                                      partitions=partitions, tracer=self.tracer, processed=self.processed,
                                      retention_s=state_retention_s, sweep_every_s=state_sweep_every_s,
                                      held_release_s=held_release_s)

    async def process(self, messages: Sequence[Any]) -> None:
        """One batch of the worker's agent: raw records (stage 1) and state-input records (stage 2).

        The events of both are applied in one pass of the state stage (one table write and one output
        per payment), then the batch waits for every acknowledgement, and only then writes the dedup
        sightings of its raw records.
        """
        started = time.perf_counter()
        raw = [m for m in messages if m.topic != self.state_input_topic]
        inputs = [m for m in messages if m.topic == self.state_input_topic]
        futures: list[asyncio.Future[Any]] = []
        normalized = await self._normalize(raw, futures) if raw else None
        items = await self._state_inputs(inputs, futures)
        if normalized is not None:
            items = normalized.to_state + items
        futures.extend(await self.state_stage.apply(items))
        await _delivered(futures)
        if normalized is not None:
            await self._raw_done(normalized, len(raw))
        if inputs:
            self.metrics.records.labels("state_input").inc(len(inputs))
        self.metrics.batch_seconds.labels("raw" if raw else "state_input").observe(time.perf_counter() - started)

    async def process_raw(self, messages: Sequence[Any]) -> None:
        """A batch of raw records only (`process`)."""
        await self.process(messages)

    async def process_state_input(self, messages: Sequence[Any]) -> None:
        """A batch of state-input records only (`process`)."""
        await self.process(messages)

    # Stage 1 ---------------------------------------------------------------------------

    async def _normalize(self, messages: Sequence[Any], futures: list[asyncio.Future[Any]]) -> _Normalized:
        """Dedup + normalize raw records: events out, the state stage's inputs and the pending sightings back."""
        producer = self.app.producer
        writes: dict[int, dict[bytes, bytes | None]] = defaultdict(dict)
        to_state: list[StateInput] = []
        stats = self.stats
        verdicts: Counter[str] = Counter()
        emitted: Counter[tuple[str, str, str]] = Counter()
        for message in messages:
            stage = "decode"
            try:  # every failure of one record is that record's dead letter; the batch goes on
                envelope = self.envelope_serde.decode(message.value)
                key: bytes = message.key if isinstance(message.key, bytes) else envelope.key.encode()
                stage = "dedup"
                partition, offset = message.partition, message.offset
                digest = body_digest(envelope.body)
                pending = writes[partition].get(key)
                raw = pending if pending is not None else self.dedup.get(partition, key)
                verdict = judge(Sighting.unpack(raw) if raw else None, partition, offset, digest)
                verdicts[verdict.value] += 1
                received_ms = to_epoch_ms(envelope.received_at)
                if received_ms > stats.watermark_ms.get(partition, 0):
                    stats.watermark_ms[partition] = received_ms
                if verdict is Verdict.DUPLICATE:
                    stats.duplicates += 1
                    continue
                if verdict is Verdict.CONFLICT:
                    stats.conflicts += 1
                    futures.append(await self.dead_letters.send(
                        message, "dedup", ValueError("same event id, different body"), reason="conflicting_duplicate"))
                    continue
                stage = "normalize"
                event = normalize(envelope, self.mappings)
                sighting = Sighting(partition, offset, digest, to_epoch_ms(event.occurred_at), received_ms).pack()
                # where it came from: a re-emitted event carries the same source, which proves it is a replay
                headers = [h for h in record_headers(message) if h[0] in _CARRIED]
                if self.tracer.enabled:
                    span = self.tracer.start_span("dedup+normalize", event.traceparent, {
                        "paystream.event_key": event.event_key, "paystream.kind": event.kind})
                    event.traceparent = self.tracer.traceparent_of(span)
                    headers = [h for h in headers if h[0] != "traceparent"]
                    headers.append(("traceparent", event.traceparent.encode()))
                    span.end()
                headers.append((SOURCE_HEADER, f"{partition}:{offset}".encode()))
                identity = identify(event)
                payment_key = f"{event.provider}:{identity.payment or identity.alias}".encode()
                payment_partition = partition_for(payment_key, self.partitions)
                encoded_event = self.event_serde.encode(event)
            except Exception as exc:  # noqa: BLE001 - logged by _dead_letter; one record must not stop the batch
                futures.append(await self._dead_letter(message, stage, exc))
                continue
            if verdict is Verdict.NEW:
                stats.new += 1
            else:
                stats.replayed += 1
            writes[partition][key] = sighting
            if identity.payment is not None:  # else emitted once resolved to its payment (`_resolve`)
                futures.append(await producer.send(self.events_topic, payment_key, encoded_event,
                                                   payment_partition, None, headers))
                emitted[(event.provider, event.kind, event.status or "none")] += 1
            if event.kind == "other":
                continue  # changes no state
            to_state.append(StateInput(message, payment_partition, payment_key, event, encoded_event, headers))
        return _Normalized(writes, to_state, verdicts, emitted)

    async def _raw_done(self, done: _Normalized, count: int) -> None:
        """After every output of the batch is acknowledged: its sightings, then the stage-1 metrics."""
        # Only now may a sighting say its record was handled: written before the acknowledgements, a failed
        # send would leave the record judged a duplicate (a provider retry dropped, the event lost).
        # Expired sightings go in the same write, a slice per partition (`DEDUP_SWEEP_VISITS`): this agent is the
        # only writer of its raw partitions' dedup entries, so what it deletes cannot race a sighting.
        sightings: list[asyncio.Future[Any]] = []
        expired = 0
        for partition, items in done.writes.items():
            gone = self._expired_sightings(partition, items)
            expired += len(gone)
            writes = {**items, **gone} if gone else items
            self.dedup.write_local(partition, writes)
            sightings.extend(await self.dedup.send_changelog(partition, writes))
        await _delivered(sightings)
        if expired:
            self.stats.expired += expired
            self.metrics.dedup_expired.inc(expired)
        now = time.monotonic()
        if now - self._dedup_gauge_at >= DEDUP_GAUGE_EVERY_S:
            self._dedup_gauge_at = now
            self.metrics.dedup_keys.set(self.dedup.estimated_keys())
        for verdict_name, n in done.verdicts.items():
            self.metrics.dedup.labels(verdict_name).inc(n)
        for labels, n in done.emitted.items():
            self.metrics.events.labels(*labels).inc(n)
        self.processed["raw"] += count
        self.metrics.records.labels("raw").inc(count)

    async def _dead_letter(self, message: Any, stage: str, error: Exception) -> asyncio.Future[Any]:
        if not isinstance(error, DecodeError | NormalizeError):  # not a known bad input: a bug, worth its traceback
            log.exception("record failed", extra={"stage": stage, "topic": message.topic,
                                                  "partition": message.partition, "offset": message.offset})
        reason = error.reason if isinstance(error, NormalizeError) else None
        return await self.dead_letters.send(message, stage, error, reason=reason)

    # Stage 2 ---------------------------------------------------------------------------

    async def _state_inputs(self, messages: Sequence[Any], futures: list[asyncio.Future[Any]]) -> list[StateInput]:
        """Events another worker (or this one, during a rebalance) routed to the owner of their payments."""
        items: list[StateInput] = []
        for message in messages:
            try:
                event = self.event_serde.decode(message.value)
                key = message.key if isinstance(message.key, bytes) else event.payment_key.encode()
            except Exception as exc:  # noqa: BLE001 - logged by _dead_letter; one record must not stop the batch
                futures.append(await self._dead_letter(message, "decode", exc))
                continue
            # the payment's own partition: a record produced to another one is forwarded there, never
            # written into a partition its key does not belong to
            items.append(StateInput(message, partition_for(key, self.partitions), key, event, message.value,
                                    record_headers(message)))
        return items

    # Dedup TTL -----------------------------------------------------------------------------

    def _expired_sightings(self, partition: int, written: dict[bytes, bytes | None]) -> dict[bytes, bytes | None]:
        """Tombstones for the entries of the next slice of `partition` that are past the TTL in event time
        (the partition's newest `received_at`), leaving alone what this batch writes."""
        watermark = self.stats.watermark_ms.get(partition)
        if watermark is None:
            return {}
        gone: dict[bytes, bytes | None] = {}
        for key, value in self.dedup_sweeper.next_slice(self.dedup, partition, 0.0,
                                                        size=DEDUP_SWEEP_VISITS * len(written)):
            if key in written:
                continue
            try:
                sighting = Sighting.unpack(value)
            except struct.error:
                # left in place: deleted, it would let its event through again; the dedup stage dead-letters
                # that key's records instead
                log.warning("unreadable dedup entry left in place", extra={"key": key.decode(errors="replace")})
                continue
            if is_expired(sighting, watermark, self.dedup_ttl_s):
                gone[key] = None
        return gone
