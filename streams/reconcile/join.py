"""Stage 1: join provider events with ledger entries per payment, and place each payment in its window(s).

Runs on `payments.events.v1` + `payments.ledger.v1`, which are co-partitioned by
`<provider>:<payment_id>`, so partition P of both and of the join table live on
one worker. For each batch it folds every record into its payment's `JoinState`,
sends each changed placement to the placements topic (keyed `<provider>:<currency>`)
and a tick with the partition's event time to every placements partition, waits
for the acknowledgements, and only then stores the states together with the
offsets they cover. A crash before the store replays the batch and sends the same
records again (stage 2 upserts them); a crash after it skips what is covered, so a
payment's contribution is never added twice and the late/on-time split of a record
is decided once.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from schemas.clock import to_epoch_ms
from schemas.records import LedgerEntry, PaymentEvent
from schemas.serde import AvroSerde
from streams.reconcile.expiry import Sweeper, join_state_expired
from streams.reconcile.model import (
    JoinState,
    WindowRef,
    WindowSpec,
    fold_event,
    fold_ledger,
    ledger_problem,
    settle,
    targets,
)
from streams.reconcile.store import PartitionStore, Producer, gather, partition_for
from streams.reconcile.windows import MAX_PLACEMENTS_PER_RECORD, Tick, encode_batch

__all__ = ["META_KEY", "DeadLetterSink", "JoinStats", "PaymentJoin"]

log = logging.getLogger("paystream.streams.reconcile")

META_KEY = b"\x00meta"
"""Per partition: the event-time clock and the last applied offset of each input topic."""


class DeadLetterSink(Protocol):
    async def send(self, message: Any, stage: str, error: BaseException, *,
                   reason: str | None = None) -> Any: ...


@dataclass
class JoinStats:
    events: int = 0
    ledger: int = 0
    skipped_replays: int = 0
    placements: int = 0
    ticks: int = 0
    rejected: int = 0
    expired: int = 0


@dataclass
class _Meta:
    clock_ms: int | None = None
    offsets: dict[str, int] = field(default_factory=dict)

    def pack(self) -> bytes:
        return orjson.dumps({"c": self.clock_ms, "o": self.offsets})

    @classmethod
    def unpack(cls, raw: bytes | None) -> _Meta:
        if raw is None:
            return cls()
        data = orjson.loads(raw)
        return cls(data["c"], dict(data["o"]))


class PaymentJoin:
    def __init__(self, *, store: PartitionStore, producer: Callable[[], Producer], events_topic: str,
                 ledger_topic: str, placements_topic: str, placement_partitions: int, spec: WindowSpec,
                 event_serde: AvroSerde[PaymentEvent], ledger_serde: AvroSerde[LedgerEntry],
                 dead_letters: DeadLetterSink) -> None:
        self.store = store
        self._producer = producer
        self.events_topic = events_topic
        self.ledger_topic = ledger_topic
        self.placements_topic = placements_topic
        self.placement_partitions = placement_partitions
        self.spec = spec
        self.event_serde = event_serde
        self.ledger_serde = ledger_serde
        self.dead_letters = dead_letters
        self.stats = JoinStats()
        self.last_seen: dict[int, float] = {}
        self._started = time.monotonic()
        self._ticked: set[int] = set()  # partitions whose clock stage 2 has heard since start (and not idle)
        self._idle: set[int] = set()  # partitions announced idle and silent since
        self.sweeper = Sweeper(prefix=b"")

    def _meta(self, partition: int) -> _Meta:
        return _Meta.unpack(self.store.get(partition, META_KEY))

    def _load(self, partition: int, key: bytes) -> JoinState:
        raw = self.store.get(partition, key)
        return JoinState() if raw is None else JoinState.unpack(orjson.loads(raw))

    async def process(self, messages: Sequence[Any]) -> None:
        now = time.monotonic()
        metas: dict[int, _Meta] = {}
        states: dict[int, dict[bytes, JoinState]] = defaultdict(dict)
        changed: dict[tuple[int, bytes], set[WindowRef]] = defaultdict(set)
        advanced: set[int] = set()
        futures: list[Any] = []
        stats = self.stats
        for message in messages:
            partition = message.partition
            meta = metas.get(partition)
            if meta is None:
                meta = metas[partition] = self._meta(partition)
            self.last_seen[partition] = now
            self._idle.discard(partition)
            if message.offset <= meta.offsets.get(message.topic, -1):
                stats.skipped_replays += 1
                continue
            meta.offsets[message.topic] = message.offset
            if message.topic == self.ledger_topic:
                stats.ledger += 1
                try:
                    entry = self.ledger_serde.decode(message.value)
                except Exception as exc:  # noqa: BLE001 - DecodeError, or TypeError for a null value
                    stats.rejected += 1
                    futures.append(await self.dead_letters.send(message, "reconcile", exc))
                    continue
                problem = ledger_problem(entry, message.key if isinstance(message.key, bytes) else None)
                if problem is not None:
                    stats.rejected += 1
                    futures.append(await self.dead_letters.send(message, "reconcile", ValueError(problem),
                                                                reason="invalid_ledger_entry"))
                    continue
                key = entry.payment_key.encode()
                if partition_for(key, self.placement_partitions) != partition:  # one partition count for all topics
                    stats.rejected += 1
                    futures.append(await self.dead_letters.send(
                        message, "reconcile", ValueError("not on the partition of its payment's events"),
                        reason="wrong_partition"))
                    continue
                state = states[partition].get(key) or self._load(partition, key)
                fold_ledger(state, entry)
            else:
                stats.events += 1
                try:
                    event = self.event_serde.decode(message.value)
                except Exception as exc:  # noqa: BLE001 - DecodeError, or TypeError for a null value
                    stats.rejected += 1
                    futures.append(await self.dead_letters.send(message, "reconcile", exc,
                                                                reason="undecodable_event"))
                    continue
                occurred = to_epoch_ms(event.occurred_at)
                if meta.clock_ms is None or occurred > meta.clock_ms:
                    meta.clock_ms = occurred
                    advanced.add(partition)
                key = event.payment_key.encode()
                state = states[partition].get(key) or self._load(partition, key)
                if not fold_event(state, event):
                    continue
            states[partition][key] = state
            refs = settle(state, targets(state, self.spec), meta.clock_ms, self.spec)
            if refs:
                changed[(partition, key)].update(refs)
        futures.extend(await self._send(states, changed, metas, advanced))
        await gather(futures)
        # Only now the state: what it covers has been acknowledged downstream.
        writes: list[Any] = []
        for partition, meta in metas.items():
            items: dict[bytes, bytes | None] = {key: orjson.dumps(state.pack())
                                                for key, state in states[partition].items()}
            items[META_KEY] = meta.pack()  # last: a changelog prefix never claims offsets it lacks states for
            writes.extend(await self.store.write(partition, items))
        await gather(writes)
        await self._expire(metas, now)

    async def _expire(self, metas: dict[int, _Meta], now: float) -> None:
        """Delete the join states of payments whose windows are all final (`expiry.py`), a slice at a time."""
        writes: list[Any] = []
        for partition, meta in metas.items():
            gone: dict[bytes, bytes | None] = {
                key: None for key, raw in self.sweeper.next_slice(self.store, partition, now)
                if key != META_KEY and join_state_expired(JoinState.unpack(orjson.loads(raw)), meta.clock_ms,
                                                          self.spec)}
            if gone:
                writes.extend(await self.store.write(partition, gone))
                self.stats.expired += len(gone)
        await gather(writes)

    async def _send(self, states: dict[int, dict[bytes, JoinState]],
                    changed: dict[tuple[int, bytes], set[WindowRef]], metas: dict[int, _Meta],
                    advanced: set[int]) -> list[Any]:
        """One record per placements partition: its placements, then the ticks of the sources that moved."""
        by_target: dict[int, list[tuple[str, int, str, list[Any] | None]]] = defaultdict(list)
        for (partition, key), refs in changed.items():
            state = states[partition][key]
            provider, _, payment_id = key.decode().partition(":")
            for currency, start in sorted(refs):
                series = f"{provider}:{currency}"
                placement = state.placements.get((currency, start))
                target = partition_for(series.encode(), self.placement_partitions)
                by_target[target].append((series, start, payment_id, None if placement is None else placement.pack()))
                self.stats.placements += 1
        ticks = []
        for partition, meta in sorted(metas.items()):
            if meta.clock_ms is not None and (partition in advanced or partition not in self._ticked):
                ticks.append(Tick(partition, meta.clock_ms, False))
                self._ticked.add(partition)
        self.stats.ticks += len(ticks)
        destinations = range(self.placement_partitions) if ticks else sorted(by_target)
        futures = []
        for target in destinations:
            futures.extend(await self._send_to(target, by_target[target], ticks))
        return futures

    async def _send_to(self, target: int, placements: list[tuple[str, int, str, list[Any] | None]],
                       ticks: list[Tick]) -> list[Any]:
        producer = self._producer()
        futures = []
        chunk = MAX_PLACEMENTS_PER_RECORD
        for start in range(0, max(len(placements), 1), chunk):
            last = start + chunk >= len(placements)
            value = encode_batch(placements[start:start + chunk], ticks if last else ())
            futures.append(await producer.send(self.placements_topic, None, value, target, None, None))
        return futures

    async def announce_idle(self, active: set[int], *, idle_after_s: float, now: float | None = None) -> list[int]:
        """Tell stage 2 which of our partitions had nothing to read for `idle_after_s`, so they do not hold
        every window open; the partition's next record makes it count again. Returns the partitions announced.
        """
        now = time.monotonic() if now is None else now
        announced = []
        for partition in sorted(active):
            if now - self.last_seen.get(partition, self._started) < idle_after_s:
                continue
            if partition in self._idle:
                continue
            clock = self._meta(partition).clock_ms
            tick = Tick(partition, -1 if clock is None else clock, True)
            futures = []
            for target in range(self.placement_partitions):
                futures.extend(await self._send_to(target, [], [tick]))
            await gather(futures)
            self._ticked.discard(partition)
            self._idle.add(partition)
            announced.append(partition)
        if announced:
            log.info("reconciliation sources idle", extra={"partitions": announced})
        return announced
