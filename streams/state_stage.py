"""The state stage: apply events to payment states, one table write and one output per payment per batch.

One writer per state partition: the worker's one agent (`pipeline.py`) consumes raw partition p
and payments.state-input.v1 partition p, which Faust co-assigns with state partition p, and hands
the events of both here in one call per batch. So only that agent, one batch at a time, writes the
partitions this worker owns; an event for any other partition goes to its state-input partition.
With one sequential writer the changelog keeps the order of the local writes without a lock.
Identity resolution (`identity.py`) happens here too: an event naming only an alias is resolved
through, or held in, the alias's entry in the state table.

Each batch stores the offset of the last state-input record it applied (`applied.py`) in the same
RocksDB write batch as the states. A record at or below that mark is a replay: the worker stopped
after its local write but before its input offset was committed, perhaps before the changelog's
acknowledgement. It changes nothing, and everything it touched is sent again (changelog record and
state output), so the changelog is never left older than the local copy. A raw record read again
after such a stop has no dedup sighting yet (sightings are written after every acknowledgement),
so it is processed again and its event, already in the state's history, re-sends the state too.

An event that fails here (unreadable stored state, a state machine or encoding error) is
dead-lettered as itself: the encoded `PaymentEvent` with `dlq.replay.topic` = the state-input
topic, because its raw record's dedup sighting is already written and a replayed raw record
would be dropped as a duplicate. The rest of the batch is applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from paystream.core.tracing import Tracer
from schemas.exceptions import DecodeError
from schemas.records import PaymentEvent, PaymentState
from schemas.serde import AvroSerde
from schemas.topics import partition_for
from streams.applied import APPLIED_KEY, pack_offset, unpack_offset
from streams.dlq import DeadLetters, Replacement
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
from streams.partitioned import PartitionedTable
from streams.state import apply_event
from streams.state_expiry import DEFAULT_RETENTION_S, SWEEP_EVERY_S, SWEEP_SLICE, expired_keys, to_ms
from streams.sweep import Sweeper

__all__ = ["StateInput", "StateStage"]

log = logging.getLogger("paystream.streams")

_TOUCH_AFTER_MS = 86_400_000
"""An alias entry that resolves events is re-stamped (and rewritten) at most this often."""
_LINK_CACHE = 100_000
"""Links this worker remembers having sent, so a busy payment does not re-send its links per event."""

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
    applied: dict[int, int] = field(default_factory=dict)
    """Per written partition: the state-input offset the batch brings its applied mark to."""
    replays: int = 0
    received: dict[bytes, Any] = field(default_factory=dict)
    failures: list[tuple[StateInput, BaseException, str | None]] = field(default_factory=list)
    sources: dict[bytes, list[StateInput]] = field(default_factory=lambda: defaultdict(list))
    """The events that changed each payment in this batch: its dead letters if its state cannot be stored."""
    forward: list[StateInput] = field(default_factory=list)
    events: list[StateInput] = field(default_factory=list)
    """Resolved events for payments.events.v1 (they were held or keyed by an alias in stage 1)."""
    transitions: Counter[str] = field(default_factory=Counter)
    expired: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    """Per partition: expired entries (None) and re-stamped alias entries, written with the batch."""


class StateStage:
    """The payment-state table and what applying to it sends; shared by both worker stages."""

    def __init__(
        self,
        app: Any,
        *,
        events_topic: str,
        state_topic: str,
        state_input_topic: str,
        states: PartitionedTable,
        dead_letters: DeadLetters,
        metrics: WorkerMetrics,
        event_serde: AvroSerde[PaymentEvent],
        state_serde: AvroSerde[PaymentState],
        partitions: int,
        tracer: Tracer,
        processed: dict[str, int],
        retention_s: int = DEFAULT_RETENTION_S,
        sweep_every_s: float = SWEEP_EVERY_S,
    ) -> None:
        self.app = app
        self.events_topic = events_topic
        self.state_topic = state_topic
        self.state_input_topic = state_input_topic
        self.states = states
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.event_serde = event_serde
        self.state_serde = state_serde
        self.partitions = partitions
        self.tracer = tracer
        self.processed = processed
        self._linked: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.retention_ms = retention_s * 1000
        self.sweeper = Sweeper(prefix=b"", every_s=sweep_every_s, slice_size=SWEEP_SLICE)
        self.clock_ms: dict[int, int] = {}
        """Per owned partition: the newest `received_at` applied (ms), the expiry clock."""

    async def apply(self, items: Sequence[StateInput]) -> list[asyncio.Future[Any]]:
        """Apply a batch's events to payment states: one table write and one output per payment.

        Only partitions the table says we own and have restored are touched; an event for any other
        goes (back) to the state-input topic. An event the state has already applied (a replay after a
        crash) re-sends the current state to the changelog and the state topic: its first sends may
        not have arrived.
        """
        if not items:
            return []
        return await self._apply_owned(items, self.states.owned_partitions())

    async def _apply_owned(self, items: Sequence[StateInput], owned: frozenset[int]) -> list[asyncio.Future[Any]]:
        batch = _StateBatch()
        marks: dict[int, int] = {}
        queue = deque(items)
        while queue:
            item = queue.popleft()
            try:
                if item.partition not in owned:
                    batch.forward.append(item)
                    continue
                message = item.message
                if message is not None and message.topic == self.state_input_topic \
                        and message.partition == item.partition:
                    offset = message.offset
                    if item.partition not in marks:
                        marks[item.partition] = unpack_offset(self.states.get(item.partition, APPLIED_KEY))
                    if offset <= marks[item.partition]:  # the mark is sent again too
                        batch.replays += 1
                    offset = max(offset, marks[item.partition])
                    if offset > batch.applied.get(item.partition, -1):
                        batch.applied[item.partition] = offset
                if item.event.event_type == LINK_EVENT_TYPE:
                    self._on_link(item, batch, queue)
                else:
                    identity = identify(item.event)
                    if identity.payment is None:
                        self._on_unresolved(item, identity.alias or item.event.payment_id, batch, queue)
                    elif self._apply_one(item, batch):
                        queue.extend(self._links(item, identity))
            except Exception as exc:  # a bug must not stop the worker: dead-letter and move on
                log.exception("state stage failed", extra={"event_key": item.event.event_key})
                batch.failures.append((item, exc, None))
        self._sweep(batch)
        if batch.replays:
            log.info("state-input records already applied; their states are sent again",
                     extra={"records": batch.replays})
        return await self._send_state_outputs(batch, owned, len(items))

    def _sweep(self, batch: _StateBatch) -> None:
        """Expire a slice of each partition this batch applied events to (`state_expiry.py`); entries the batch
        itself writes are left for the next round."""
        now = time.monotonic()
        for partition in sorted(batch.changed.keys() | batch.aliases.keys()):
            clock = self.clock_ms.get(partition)
            if clock is None:
                continue
            busy = batch.changed[partition].keys() | {ALIAS_PREFIX + k for k in batch.aliases[partition]}
            entries = [(k, v) for k, v in self.sweeper.next_slice(self.states, partition, now) if k not in busy]
            writes, counts = expired_keys(entries, clock, self.retention_ms, self.state_serde)
            if writes:
                batch.expired[partition] = writes
            for what, n in counts.items():
                if n:
                    self.metrics.state_expired.labels(what).inc(n)

    def _apply_one(self, item: StateInput, batch: _StateBatch) -> bool:
        """Apply one event to its payment's state; False when it could not be read or applied."""
        partition, key, event = item.partition, item.key, item.event
        received_ms = to_ms(event.received_at)
        if received_ms > self.clock_ms.get(partition, -1):
            self.clock_ms[partition] = received_ms
        state = batch.changed[partition].get(key)
        if state is None:
            raw = self.states.get(partition, key)
            if raw is not None:
                try:
                    state = self.state_serde.decode(raw)
                except DecodeError as exc:
                    batch.failures.append((item, exc, "unreadable_state"))
                    return False
        try:
            new_state = apply_event(state, event)
        except Exception as exc:  # a bug must not stop the worker: dead-letter and move on
            log.exception("state machine failed", extra={"event_key": event.event_key})
            batch.failures.append((item, exc, None))
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
        batch.sources[key].append(item)
        return True

    # Identity: one canonical payment per purchase (streams/identity.py) ---------------------------------

    def _links(self, item: StateInput, identity: Identity) -> list[StateInput]:
        """Link records for the aliases this event proves, unless this worker already sent the same link."""
        event = item.event
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
        else:  # linked before (a replay, or another worker's link): its changelog record may never have arrived
            batch.alias_changed[item.partition].add(item.key)
        entry.touch(to_ms(item.event.received_at))
        for value, headers in entry.held.values():  # again on a replayed link: applied once by event key
            try:
                held = self.event_serde.decode(value)
            except DecodeError as exc:
                batch.failures.append((StateInput(item.message, item.partition, item.key, item.event, value, headers),
                                       exc, "unreadable_held_event"))
                continue
            queue.append(self._resolve(StateInput(item.message, item.partition, item.key, held, value, headers),
                                       entry.payment, batch))

    def _on_unresolved(self, item: StateInput, alias: str, batch: _StateBatch, queue: deque[StateInput]) -> None:
        """An event naming only an alias: on to its payment when linked, else held until the link arrives."""
        entry = self._alias_entry(batch, item.partition, item.key)
        received_ms = to_ms(item.event.received_at)
        if entry.payment is not None:
            queue.append(self._resolve(item, entry.payment, batch))
            if entry.touched_ms is None or received_ms - entry.touched_ms > _TOUCH_AFTER_MS:
                entry.touch(received_ms)  # still in use: keep it from expiring (rewritten at most daily)
                batch.alias_changed[item.partition].add(item.key)
            return
        entry.touch(received_ms)
        if entry.hold(item.event.event_key, item.value, item.headers):
            self.metrics.identity.labels("held").inc()
            log.info("event held until its payment is known",
                     extra={"event_key": item.event.event_key, "alias": alias})
        # else: held before, a replay whose entry's changelog record may never have arrived
        batch.alias_changed[item.partition].add(item.key)

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

    def _encode_states(self, states: dict[bytes, PaymentState], batch: _StateBatch) -> dict[bytes, bytes | None]:
        """Encoded states; a state that cannot be encoded is not stored, and the events that changed it in
        this batch become dead letters."""
        encoded: dict[bytes, bytes | None] = {}
        for key, state in list(states.items()):
            try:
                encoded[key] = self.state_serde.encode(state)
            except Exception as exc:  # logged; one payment must not stop the batch
                log.exception("payment state cannot be encoded", extra={"payment": key.decode("utf-8", "replace")})
                del states[key]
                batch.failures.extend((item, exc, "unencodable_state") for item in batch.sources.pop(key, []))
        return encoded

    async def _send_state_outputs(self, batch: _StateBatch, owned: frozenset[int],
                                  count: int) -> list[asyncio.Future[Any]]:
        """Write the batch's states, alias entries and applied marks in one RocksDB batch per partition,
        then queue every output; the changelog gets each partition's mark last, after the states it covers."""
        encoded = {partition: self._encode_states(states, batch) for partition, states in batch.changed.items()}
        for partition, writes in batch.expired.items():
            encoded[partition] = {**writes, **encoded.get(partition, {})}
        for partition, keys in batch.alias_changed.items():
            values = encoded.setdefault(partition, {})
            for key in keys:
                values[ALIAS_PREFIX + key] = batch.aliases[partition][key].pack()
        marks = {partition: {APPLIED_KEY: pack_offset(offset)} for partition, offset in batch.applied.items()}
        for partition in sorted(encoded.keys() | marks.keys()):
            self.states.write_local(partition, {**encoded.get(partition, {}), **marks.get(partition, {})})
        reemitted = {partition: {key: self.state_serde.encode(state) for key, state in states.items()}
                     for partition, states in batch.reemit.items()}
        producer = self.app.producer
        futures: list[asyncio.Future[Any]] = []
        for item, error, reason in batch.failures:
            replacement = Replacement(self.state_input_topic, item.partition, item.key, item.value, item.headers)
            futures.append(await self.dead_letters.send(item.message, "state", error, reason=reason,
                                                        replacement=replacement))
        for item in batch.events:
            futures.append(await producer.send(self.events_topic, item.key, item.value, item.partition, None,
                                               item.headers))
        now = time.time()
        for partition in sorted(encoded.keys() | reemitted.keys() | marks.keys()):
            values, again = encoded.get(partition, {}), reemitted.get(partition, {})
            # a replay re-sends the stored state: a worker that stopped after its local write but before the
            # changelog's acknowledgement had it locally and nowhere else
            futures.extend(await self.states.send_changelog(
                partition, {**values, **again, **marks.get(partition, {})}))
            for key, state in batch.changed.get(partition, {}).items():
                headers = [("traceparent", state.traceparent.encode())] if state.traceparent else []
                futures.append(await producer.send(self.state_topic, key, values[key], partition, None, headers))
                self.metrics.e2e_seconds.observe(max(0.0, now - batch.received[key].timestamp()))
            for key, value in again.items():
                futures.append(await producer.send(self.state_topic, key, value, partition, None, []))
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
        applied = max(0, count - len(batch.forward) - len(batch.failures))
        self.processed["events"] += applied
        self.metrics.applied.inc(applied)
        return futures
