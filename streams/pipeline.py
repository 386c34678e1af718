"""The two processing stages, one batch at a time.

Stage 1 (raw → events): decode the envelope, dedup by event key, normalize, and
emit one `PaymentEvent` keyed by payment to payments.events.v1; then apply it to
the payment's state right away when this worker owns the payment's partition and
its table is restored, or hand it to the owner through the internal
payments.state-input.v1 topic (stage 2). Stage 2 sends an event back to that topic
when it reaches a worker whose table is not ready (a rebalance is under way), so the
owner applies it after recovery. Each payment's state is written and emitted once per batch.

Both stages write their tables directly (see `partitioned.py`), send every output
through the worker's producer, and wait for the acknowledgements before taking the
next batch, so Faust commits an input offset only after everything it caused is
stored. Anything that fails goes to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from paystream.core.tracing import Tracer
from schemas.clock import to_epoch_ms
from schemas.exceptions import DecodeError
from schemas.records import PaymentEvent, PaymentState
from schemas.serde import AvroSerde
from schemas.topics import partition_for
from streams.dedup import Sighting, Verdict, body_digest, is_expired, judge
from streams.dlq import DeadLetters
from streams.identity import (
    ALIAS_PREFIX,
    LINK_EVENT_TYPE,
    RESOLVED,
    AliasEntry,
    Identity,
    identify,
    link_event,
    resolved,
)
from streams.metrics import WorkerMetrics
from streams.normalize import NormalizeError, StandardMappings, normalize
from streams.partitioned import PartitionedTable
from streams.state import apply_event

__all__ = ["SOURCE_HEADER", "DedupStats", "Pipeline"]

SOURCE_HEADER = "paystream.source"

log = logging.getLogger("paystream.streams")

_LINK_CACHE = 100_000
"""Links this worker remembers having sent, so a busy payment does not re-send its links per event."""


def _headers(message: Any) -> list[tuple[str, bytes]]:
    headers = message.headers or []
    if isinstance(headers, dict):
        return [(k, v) for k, v in headers.items() if isinstance(v, bytes)]
    return [(k, v) for k, v in headers if isinstance(v, bytes)]


@dataclass(slots=True)
class StateInput:
    """One event bound for a payment's state, with what it takes to send it on to the owner."""

    message: Any
    partition: int
    key: bytes
    event: PaymentEvent
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class _StateBatch:
    """What one pass of the state stage changed and must send."""

    changed: dict[int, dict[bytes, PaymentState]] = field(default_factory=lambda: defaultdict(dict))
    reemit: dict[int, dict[bytes, PaymentState]] = field(default_factory=lambda: defaultdict(dict))
    aliases: dict[int, dict[bytes, AliasEntry]] = field(default_factory=lambda: defaultdict(dict))
    alias_changed: dict[int, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    received: dict[bytes, Any] = field(default_factory=dict)
    failures: list[tuple[Any, str, BaseException, str | None]] = field(default_factory=list)
    forward: list[StateInput] = field(default_factory=list)
    events: list[StateInput] = field(default_factory=list)
    """Resolved events for payments.events.v1 (they were held or keyed by an alias in stage 1)."""
    transitions: Counter[str] = field(default_factory=Counter)


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
        self._linked: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.processed = {"raw": 0, "events": 0}

    # Stage 1 ---------------------------------------------------------------------------

    async def process_raw(self, messages: Sequence[Any]) -> None:
        """Dedup + normalize a batch of raw records; apply payment state here when we own the payment.

        Our topics are co-partitioned by Faust's assignor, so a payment whose partition this worker
        owns (and has restored) is applied to the local state table at once; any other goes to the
        internal state-input topic for its owner (`process_state_input`).
        """
        started = time.perf_counter()
        producer = self.app.producer
        futures: list[asyncio.Future[Any]] = []
        writes: dict[int, dict[bytes, bytes | None]] = defaultdict(dict)
        to_state: list[StateInput] = []
        stats = self.stats
        verdicts: Counter[str] = Counter()
        emitted: Counter[tuple[str, str, str]] = Counter()
        for message in messages:
            try:
                envelope = self.envelope_serde.decode(message.value)
            except DecodeError as exc:
                futures.append(await self.dead_letters.send(message, "decode", exc))
                continue
            key: bytes = message.key if isinstance(message.key, bytes) else envelope.key.encode()
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
            try:
                event = normalize(envelope, self.mappings)
            except NormalizeError as exc:
                futures.append(await self.dead_letters.send(message, "normalize", exc, reason=exc.reason))
                continue
            if verdict is Verdict.NEW:
                stats.new += 1
            else:
                stats.replayed += 1
            provider_ms = to_epoch_ms(event.occurred_at)
            writes[partition][key] = Sighting(partition, offset, digest, provider_ms, received_ms).pack()
            # where it came from: a re-emitted event carries the same source, which proves it is a replay
            headers = [h for h in _headers(message) if h[0] == "traceparent"]
            if self.tracer.enabled:
                span = self.tracer.start_span("dedup+normalize", event.traceparent,
                                              {"paystream.event_key": event.event_key, "paystream.kind": event.kind})
                event.traceparent = self.tracer.traceparent_of(span)
                headers = [("traceparent", event.traceparent.encode())]
                span.end()
            headers.append((SOURCE_HEADER, f"{partition}:{offset}".encode()))
            identity = identify(event)
            payment_key = f"{event.provider}:{identity.payment or identity.alias}".encode()
            payment_partition = partition_for(payment_key, self.partitions)
            encoded_event = self.event_serde.encode(event)
            if identity.payment is not None:  # else emitted once resolved to its payment (`_resolve`)
                futures.append(await producer.send(self.events_topic, payment_key, encoded_event,
                                                   payment_partition, None, headers))
                emitted[(event.provider, event.kind, event.status or "none")] += 1
            if event.kind == "other":
                continue  # changes no state
            to_state.append(StateInput(message, payment_partition, payment_key, event, encoded_event, headers))
        for partition, items in writes.items():
            self.dedup.write_local(partition, items)
        futures.extend(await self._apply_states(to_state))
        for partition, items in writes.items():
            futures.extend(await self.dedup.send_changelog(partition, items))
        if futures:
            await asyncio.gather(*futures)
        for verdict_name, count in verdicts.items():
            self.metrics.dedup.labels(verdict_name).inc(count)
        for labels, count in emitted.items():
            self.metrics.events.labels(*labels).inc(count)
        self.processed["raw"] += len(messages)
        self.metrics.records.labels("raw").inc(len(messages))
        self.metrics.batch_seconds.labels("raw").observe(time.perf_counter() - started)

    # Stage 2 ---------------------------------------------------------------------------

    async def process_state_input(self, messages: Sequence[Any]) -> None:
        """Apply events another worker routed to us because we own their payments' partitions."""
        started = time.perf_counter()
        futures: list[asyncio.Future[Any]] = []
        items: list[StateInput] = []
        for message in messages:
            try:
                event = self.event_serde.decode(message.value)
            except DecodeError as exc:
                futures.append(await self.dead_letters.send(message, "decode", exc))
                continue
            key = message.key if isinstance(message.key, bytes) else event.payment_key.encode()
            items.append(StateInput(message, message.partition, key, event, message.value, _headers(message)))
        futures.extend(await self._apply_states(items))
        if futures:
            await asyncio.gather(*futures)
        self.metrics.records.labels("state_input").inc(len(messages))
        self.metrics.batch_seconds.labels("state_input").observe(time.perf_counter() - started)

    async def _apply_states(self, items: Sequence[StateInput]) -> list[asyncio.Future[Any]]:
        """Apply events to payment states: one table write and one output per payment per batch.

        Runs under the state table's lock until every record is queued, so the changelog keeps the
        order of the local writes even with both stages applying. Only partitions the table says we
        own and have restored are touched; an event for any other goes (back) to the state-input
        topic. An event the state has already applied (a replay after a crash) re-emits the current
        state: its first emission may not have reached the topic.
        """
        if not items:
            return []
        async with self.states.lock:
            return await self._apply_owned(items, self.states.owned_partitions())

    async def _apply_owned(self, items: Sequence[StateInput], owned: frozenset[int]) -> list[asyncio.Future[Any]]:
        batch = _StateBatch()
        queue = deque(items)
        while queue:
            item = queue.popleft()
            if item.partition not in owned:
                batch.forward.append(item)
            elif item.event.event_type == LINK_EVENT_TYPE:
                self._on_link(item, batch, queue)
            else:
                identity = identify(item.event)
                if identity.payment is None:
                    self._on_unresolved(item, identity.alias or item.event.payment_id, batch, queue)
                elif self._apply_one(item, batch):
                    queue.extend(self._links(item.event, identity))
        return await self._send_state_outputs(batch, owned, len(items))

    def _apply_one(self, item: StateInput, batch: _StateBatch) -> bool:
        """Apply one event to its payment's state; False when it could not be read or applied."""
        message, partition, key, event = item.message, item.partition, item.key, item.event
        state = batch.changed[partition].get(key)
        if state is None:
            raw = self.states.get(partition, key)
            if raw is not None:
                try:
                    state = self.state_serde.decode(raw)
                except DecodeError as exc:
                    batch.failures.append((message, "state", exc, "unreadable_state"))
                    return False
        try:
            new_state = apply_event(state, event)
        except Exception as exc:  # a bug must not stop the worker: dead-letter and move on
            log.exception("state machine failed", extra={"event_key": event.event_key})
            batch.failures.append((message, "state", exc, None))
            return False
        if new_state is None:
            if state is not None and event.kind != "other" and key not in batch.changed[partition]:
                batch.reemit[partition][key] = state
            return True
        batch.transitions["kept" if state is not None and state.status == new_state.status else "moved"] += 1
        if self.tracer.enabled:
            span = self.tracer.start_span("apply state", event.traceparent,
                                          {"paystream.payment": key.decode(), "paystream.status": new_state.status})
            new_state.traceparent = self.tracer.traceparent_of(span)
            span.end()
        batch.changed[partition][key] = new_state
        batch.reemit[partition].pop(key, None)
        batch.received[key] = event.received_at
        return True

    # Identity: one canonical payment per purchase (streams/identity.py) ---------------------------------

    def _links(self, event: PaymentEvent, identity: Identity) -> list[StateInput]:
        """Link records for the aliases this event proves, unless this worker already sent the same link."""
        out: list[StateInput] = []
        for alias in identity.links:
            if identity.payment is None or self._linked.get((event.provider, alias)) == identity.payment:
                continue
            self._linked[(event.provider, alias)] = identity.payment
            if len(self._linked) > _LINK_CACHE:
                self._linked.popitem(last=False)
            link = link_event(event, alias, identity.payment)
            key = f"{event.provider}:{alias}".encode()
            out.append(StateInput(None, partition_for(key, self.partitions), key, link,
                                  self.event_serde.encode(link), []))
        return out

    def _alias_entry(self, batch: _StateBatch, partition: int, key: bytes) -> AliasEntry:
        entry = batch.aliases[partition].get(key)
        if entry is None:
            entry = AliasEntry.unpack(self.states.get(partition, ALIAS_PREFIX + key))
            batch.aliases[partition][key] = entry
        return entry

    def _on_link(self, item: StateInput, batch: _StateBatch, queue: deque[StateInput]) -> None:
        """Record which payment this alias belongs to and release the events held for it."""
        payment = item.event.related_ids[RESOLVED]
        entry = self._alias_entry(batch, item.partition, item.key)
        if entry.payment is None:
            entry.payment = payment
            batch.alias_changed[item.partition].add(item.key)
            self.metrics.identity.labels("linked").inc()
        elif entry.payment != payment:
            log.warning("alias already linked to another payment; link ignored",
                        extra={"alias": item.key.decode(), "payment": entry.payment, "other": payment})
            self.metrics.identity.labels("conflict").inc()
            return
        for value, headers in entry.held.values():  # again on a replayed link: applied once by event key
            try:
                held = self.event_serde.decode(value)
            except DecodeError as exc:
                batch.failures.append((item.message, "state", exc, "unreadable_held_event"))
                continue
            queue.append(self._resolve(StateInput(item.message, item.partition, item.key, held, value, headers),
                                       entry.payment, batch))

    def _on_unresolved(self, item: StateInput, alias: str, batch: _StateBatch, queue: deque[StateInput]) -> None:
        """An event naming only an alias: on to its payment when linked, else held until the link arrives."""
        entry = self._alias_entry(batch, item.partition, item.key)
        if entry.payment is not None:
            queue.append(self._resolve(item, entry.payment, batch))
        elif entry.hold(item.event.event_key, item.value, item.headers):
            batch.alias_changed[item.partition].add(item.key)
            self.metrics.identity.labels("held").inc()
            log.info("event held until its payment is known",
                     extra={"event_key": item.event.event_key, "alias": alias})

    def _resolve(self, item: StateInput, payment: str, batch: _StateBatch) -> StateInput:
        """The event re-keyed to its payment; it goes to payments.events.v1 now (it was not emitted before)."""
        event = resolved(item.event, payment)
        key = event.payment_key.encode()
        value = self.event_serde.encode(event)
        resolved_item = StateInput(item.message, partition_for(key, self.partitions), key, event, value,
                                   item.headers)
        batch.events.append(resolved_item)
        self.metrics.identity.labels("resolved").inc()
        return resolved_item

    async def _send_state_outputs(self, batch: _StateBatch, owned: frozenset[int],
                                  count: int) -> list[asyncio.Future[Any]]:
        """Write the batch's states and alias entries, then queue every output (under the table lock)."""
        encoded = {partition: {key: self.state_serde.encode(state) for key, state in states.items()}
                   for partition, states in batch.changed.items()}
        for partition, keys in batch.alias_changed.items():
            values = encoded.setdefault(partition, {})
            for key in keys:
                values[ALIAS_PREFIX + key] = batch.aliases[partition][key].pack()
        for partition, values in encoded.items():
            self.states.write_local(partition, dict(values))
        # -- the table is consistent; the lock keeps other writers out until the records are queued --
        producer = self.app.producer
        futures: list[asyncio.Future[Any]] = []
        for message, stage, error, reason in batch.failures:
            futures.append(await self.dead_letters.send(message, stage, error, reason=reason))
        for item in batch.events:
            futures.append(await producer.send(self.events_topic, item.key, item.value, item.partition, None,
                                               item.headers))
        now = time.time()
        for partition, values in encoded.items():
            futures.extend(await self.states.send_changelog(partition, dict(values)))
            for key, state in batch.changed.get(partition, {}).items():
                headers = [("traceparent", state.traceparent.encode())] if state.traceparent else []
                futures.append(await producer.send(self.state_topic, key, values[key], partition, None, headers))
                self.metrics.e2e_seconds.observe(max(0.0, now - batch.received[key].timestamp()))
        for partition, states in batch.reemit.items():
            for key, state in states.items():
                futures.append(await producer.send(self.state_topic, key, self.state_serde.encode(state), partition,
                                                   None, []))
        for item in batch.forward:
            futures.append(await producer.send(self.state_input_topic, item.key, item.value, item.partition, None,
                                               item.headers))
        for outcome, n in batch.transitions.items():
            self.metrics.transitions.labels(outcome).inc(n)
        if batch.forward:
            self.metrics.forwarded.inc(len(batch.forward))
            if not owned:
                log.info("state table not restored (rebalance under way); events sent to the state-input topic",
                         extra={"events": len(batch.forward)})
        applied = max(0, count - len(batch.forward))
        self.processed["events"] += applied
        self.metrics.applied.inc(applied)
        return futures

    # Dedup TTL -----------------------------------------------------------------------------

    async def sweep_dedup(self, *, active: AbstractSet[int] | None = None, chunk: int = 5000) -> int:
        """Delete dedup entries older than the TTL in event time; returns how many.

        Only `active` partitions are swept: a standby copy is kept in step by its owner's tombstones.
        """
        removed = 0
        for partition in self.dedup.partitions():
            if active is not None and partition not in active:
                continue
            watermark = self.stats.watermark_ms.get(partition)
            if watermark is None:
                continue
            expired: dict[bytes, bytes | None] = {}
            for index, (key, value) in enumerate(self.dedup.scan(partition)):
                if is_expired(Sighting.unpack(value), watermark, self.dedup_ttl_s):
                    expired[key] = None
                if index % chunk == chunk - 1:
                    await asyncio.sleep(0)  # let the agents run between chunks
            if expired:
                futures = await self.dedup.write(partition, expired)
                await asyncio.gather(*futures)
                removed += len(expired)
        self.stats.expired += removed
        self.metrics.dedup_expired.inc(removed)
        self.metrics.dedup_keys.set(self.dedup.estimated_keys())
        if removed:
            log.info("dedup entries expired", extra={"removed": removed})
        return removed
