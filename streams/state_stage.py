"""The state stage: apply events to payment states, one table write and one output per payment per batch.

One writer per state partition: the worker's one agent (`pipeline.py`) consumes raw partition p
and payments.state-input.v1 partition p, which Faust co-assigns with state partition p, and hands
the events of both here in one call per batch. So only that agent, one batch at a time, writes the
partitions this worker owns; an event for any other partition goes to its state-input partition.
With one sequential writer the changelog keeps the order of the local writes without a lock.
Identity resolution (`identity.py`, `state_identity.py`) happens here too: an event naming only an
alias is resolved through, or held in, the alias's entry in the state table, and released under the
alias once it has waited past `PAYSTREAM_HELD_RELEASE_S` (`held_release.py`).

Each batch stores the offset of the last state-input record it applied (`applied.py`) in the same
RocksDB write batch as the states. A record at or below that mark is a replay: the worker stopped
after its local write but before its input offset was committed, perhaps before the changelog's
acknowledgement. It changes nothing, and everything it touched is sent again (changelog record and
state output), so the changelog is never left older than the local copy. A raw record read again
after such a stop has no dedup sighting yet (sightings are written after every acknowledgement),
so it is processed again and its event, already in the state's history, re-sends the state too.

A state an older release's money rules folded (`PaymentState.fold_revision`) is folded again when an
event of it is replayed, or on a request the sweep sends when it visits it (`state_refold.py`), and sent
like any change.

An event that fails here (unreadable stored state, a state machine or encoding error) is
dead-lettered as itself: the encoded `PaymentEvent` with `dlq.replay.topic` = the state-input
topic, because its raw record's dedup sighting is already written and a replayed raw record
would be dropped as a duplicate. The rest of the batch is applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

from paystream.core.tracing import Tracer
from schemas.exceptions import DecodeError
from schemas.records import PaymentEvent, PaymentState
from schemas.serde import AvroSerde
from streams.applied import APPLIED_KEY, pack_offset, unpack_offset
from streams.dlq import DeadLetters, Replacement
from streams.fold import FOLD_REVISION
from streams.held_release import DEFAULT_HELD_RELEASE_S, overdue_aliases
from streams.identity import (
    ALIAS_PREFIX,
    LINK_EVENT_TYPE,
    identify,
)
from streams.metrics import WorkerMetrics
from streams.partitioned import PartitionedTable
from streams.state import apply_event, refold
from streams.state_batch import StateBatch, StateInput
from streams.state_expiry import DEFAULT_RETENTION_S, SWEEP_EVERY_S, SWEEP_SLICE, expired_keys, to_ms
from streams.state_identity import AliasResolution
from streams.state_refold import REFOLD_EVENT_TYPE, refold_request
from streams.sweep import Sweeper

__all__ = ["StateInput", "StateStage"]

log = logging.getLogger("paystream.streams")

class StateStage(AliasResolution):
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
        held_release_s: int = DEFAULT_HELD_RELEASE_S,
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
        self._releases_sent: set[tuple[int, bytes]] = set()
        """Releases sent and not applied yet: a sweep that visits the entry again does not send another."""
        self._refolds_sent: set[tuple[int, bytes]] = set()
        """Refold requests sent and not applied yet (the same for the states they name)."""
        self.retention_ms = retention_s * 1000
        self.held_release_ms = min(held_release_s, retention_s) * 1000  # released before it could expire
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
        batch = StateBatch()
        marks: dict[int, int] = {}
        self._drain(deque(items), batch, marks, owned)
        self._sweep(batch)
        if batch.replays:
            log.info("state-input records already applied; their states are sent again",
                     extra={"records": batch.replays})
        if batch.transitions["refolded"] or batch.refolds:
            log.info("payment states folded again by the current money rules",
                     extra={"states": batch.transitions["refolded"], "requested": len(batch.refolds)})
        return await self._send_state_outputs(batch, owned, len(items))

    def _drain(self, queue: deque[StateInput], batch: StateBatch, marks: dict[int, int],
               owned: frozenset[int]) -> None:
        """Apply, resolve, hold or forward each item; links and the events they release join the queue."""
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
                elif item.event.event_type == REFOLD_EVENT_TYPE:
                    self._on_refold(item, batch)
                else:
                    identity = identify(item.event)
                    if identity.payment is None:
                        self._on_unresolved(item, identity.alias or item.event.payment_id, batch, queue)
                    elif self._apply_one(item, batch):
                        queue.extend(self._links(item, identity))
            except Exception as exc:  # a bug must not stop the worker: dead-letter and move on
                log.exception("state stage failed", extra={"event_key": item.event.event_key})
                batch.failures.append((item, exc, None))

    def _sweep(self, batch: StateBatch) -> None:
        """Expire a slice of each partition this batch applied events to (`state_expiry.py`); entries the batch
        itself writes are left for the next round. An overdue held alias is released rather than expired: its
        self-link goes to its own state-input partition (`held_release.py`) and is applied from there, as an
        input record with an offset, so a crash before its sends arrive leaves the entry unlinked to decide
        again."""
        now = time.monotonic()
        for partition in sorted(batch.changed.keys() | batch.aliases.keys()):
            clock = self.clock_ms.get(partition)
            if clock is None:
                continue
            busy = batch.changed[partition].keys() | {ALIAS_PREFIX + k for k in batch.aliases[partition]}
            entries = [(k, v) for k, v in self.sweeper.next_slice(self.states, partition, now) if k not in busy]
            links = {key: link for key, entry in overdue_aliases(entries, clock, self.held_release_ms)
                     if (partition, key) not in self._releases_sent
                     and (link := self._self_link(partition, key, entry)) is not None}
            batch.releases += links.values()
            self._releases_sent.update((partition, key) for key in links)
            released = {ALIAS_PREFIX + key for key in links}
            verdict = expired_keys([(k, v) for k, v in entries if k not in released], clock,
                                   self.retention_ms, self.state_serde)
            if verdict.writes:
                batch.expired[partition] = verdict.writes
            for what, n in verdict.counts.items():
                if n:
                    self.metrics.state_expired.labels(what).inc(n)
            self._request_refolds(partition, verdict.kept, batch)

    def _request_refolds(self, partition: int, kept: dict[bytes, PaymentState], batch: StateBatch) -> None:
        """Ask for the swept states an older release's money rules folded to be folded again (`state_refold.py`):
        after an upgrade that changed them, every `payments` row comes right within a sweep round."""
        for key, state in kept.items():
            if state.fold_revision < FOLD_REVISION and (partition, key) not in self._refolds_sent:
                request = refold_request(state)
                batch.refolds.append(StateInput(None, partition, key, request, self.event_serde.encode(request), []))
                self._refolds_sent.add((partition, key))

    def _on_refold(self, item: StateInput, batch: StateBatch) -> None:
        """Fold the state again if older rules folded it; else send it again (a replay after a crash). A request
        that fails is dead-lettered, and the sweep does not ask again
        for that state while this worker runs (`paystream dlq replay` retries it after a fix)."""
        partition, key = item.partition, item.key
        if key in batch.changed[partition]:
            self._refolds_sent.discard((partition, key))
            return  # folded by today's rules in this batch
        raw = self.states.get(partition, key)
        if raw is None:
            self._refolds_sent.discard((partition, key))
            return  # expired since
        try:
            self._refold_or_resend(item, self.state_serde.decode(raw), batch)
        except Exception as exc:  # a bug must not stop the worker, nor come back every sweep round
            log.exception("payment state cannot be folded again", extra={"payment": key.decode("utf-8", "replace")})
            self._refolds_sent.add((partition, key))
            batch.failures.append((item, exc, "unreadable_state" if isinstance(exc, DecodeError) else None))
            return
        self._refolds_sent.discard((partition, key))

    def _apply_one(self, item: StateInput, batch: StateBatch) -> bool:
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
                self._refold_or_resend(item, state, batch)
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

    @staticmethod
    def _refold_or_resend(item: StateInput, state: PaymentState, batch: StateBatch) -> None:
        """A stored state met again without a new event (a replay, a refold request): folded again when older
        money rules folded it (`streams.state.refold`), else sent again as it is (its first sends may never
        have arrived)."""
        partition, key = item.partition, item.key
        refolded = refold(state)
        if refolded is None:
            batch.reemit[partition][key] = state
            return
        log.debug("payment state folded again by the current money rules",
                  extra={"payment": key.decode("utf-8", "replace"), "from_revision": state.fold_revision,
                         "to_revision": refolded.fold_revision})
        batch.transitions["refolded"] += 1
        batch.changed[partition][key] = refolded
        batch.sources[key].append(item)

    def _encode_states(self, states: dict[bytes, PaymentState], batch: StateBatch) -> dict[bytes, bytes | None]:
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

    async def _send_state_outputs(self, batch: StateBatch, owned: frozenset[int],
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
                if (received := batch.received.get(key)) is not None:  # a refold has no new event to time
                    self.metrics.e2e_seconds.observe(max(0.0, now - received.timestamp()))
            for key, value in again.items():
                futures.append(await producer.send(self.state_topic, key, value, partition, None, []))
        for item in [*batch.forward, *batch.releases, *batch.refolds]:
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
