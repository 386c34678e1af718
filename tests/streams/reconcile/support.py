"""In-process stand-ins for the two stages: an in-memory table, a log-like bus as the producer,
and a harness that pumps events and ledger entries through join → placements → windows.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.records import LedgerEntry, PaymentEvent, ReconciliationWindow
from schemas.serde import ledger_serde, payment_event_serde, reconciliation_serde
from schemas.topics import partition_for
from streams.reconcile.aggregate import WindowAggregator
from streams.reconcile.join import PaymentJoin
from streams.reconcile.model import DEFAULT_RETENTION_S, WindowSpec

EVENTS, LEDGER, PLACEMENTS, OUTPUT = "events", "ledger", "placements", "reconciliation"
DAY = datetime(2026, 11, 2, tzinfo=UTC)


def at(hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    return DAY + timedelta(hours=hours, minutes=minutes, seconds=seconds)


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class MemoryStore:
    """A table's partitions as sorted-on-scan dicts; `fail_writes` simulates a crash before the store."""

    def __init__(self) -> None:
        self.data: dict[int, dict[bytes, bytes]] = defaultdict(dict)
        self.fail_writes = False

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.data[partition].get(key)

    async def write(self, partition: int, items: dict[bytes, bytes | None]) -> list[asyncio.Future[Any]]:
        if self.fail_writes:
            raise RuntimeError("crash before the table write")
        for key, value in items.items():
            if value is None:
                self.data[partition].pop(key, None)
            else:
                self.data[partition][key] = value
        return []

    def scan_prefix(self, partition: int, prefix: bytes, start: bytes | None = None
                    ) -> Iterator[tuple[bytes, bytes]]:
        for key in sorted(k for k in self.data[partition] if k.startswith(prefix) and k >= (start or prefix)):
            yield key, self.data[partition][key]


class Bus:
    """Topics as lists per partition; `send` appends like a broker would and resolves at once."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.logs: dict[tuple[str, int], list[Message]] = defaultdict(list)

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any) -> asyncio.Future[Any]:
        if partition is None:
            assert key is not None
            partition = partition_for(key, self.partitions)
        log = self.logs[(topic, partition)]
        assert value is not None
        log.append(Message(topic, partition, len(log), key, value))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def topic(self, topic: str) -> list[Message]:
        return [m for (t, _), log in sorted(self.logs.items()) if t == topic for m in log]


class Letters:
    def __init__(self) -> None:
        self.sent: list[tuple[Message, str, str | None]] = []

    async def send(self, message: Any, stage: str, error: BaseException, *, reason: str | None = None) -> Any:
        self.sent.append((message, stage, reason))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class Harness:
    """Join and windows stages over a bus, with consumer positions, so a test can crash and replay."""

    def __init__(self, partitions: int = 4, window_s: int = 3600, grace_s: int = 600, seed: int = 0,
                 retention_s: int = DEFAULT_RETENTION_S, sweep_every_s: float | None = None) -> None:
        self.bus = Bus(partitions)
        self.spec = WindowSpec.from_seconds(window_s, grace_s, retention_s)
        self.sweep_every_s = sweep_every_s
        self.letters = Letters()
        self.join_store, self.window_store = MemoryStore(), MemoryStore()
        self.join = self._join()
        self.windows = self._windows()
        self.positions: dict[tuple[str, int], int] = defaultdict(int)
        self.rng = random.Random(seed)
        self.event_serde = payment_event_serde()
        self.ledger_serde = ledger_serde()

    def _join(self) -> PaymentJoin:
        join = PaymentJoin(store=self.join_store, producer=lambda: self.bus, events_topic=EVENTS, ledger_topic=LEDGER,
                           placements_topic=PLACEMENTS, placement_partitions=self.bus.partitions, spec=self.spec,
                           event_serde=payment_event_serde(), ledger_serde=ledger_serde(), dead_letters=self.letters)
        if self.sweep_every_s is not None:
            join.sweeper.every_s = self.sweep_every_s
        return join

    def _windows(self) -> WindowAggregator:
        windows = WindowAggregator(store=self.window_store, producer=lambda: self.bus, output_topic=OUTPUT,
                                   sources=self.bus.partitions, spec=self.spec, serde=reconciliation_serde(),
                                   dead_letters=self.letters)
        if self.sweep_every_s is not None:
            windows.sweeper.every_s = self.sweep_every_s
        return windows

    def restart(self) -> None:
        """A new process on the same tables: in-memory state is gone, consumer positions are the committed ones."""
        self.join = self._join()
        self.windows = self._windows()

    async def publish(self, *records: PaymentEvent | LedgerEntry) -> None:
        for record in records:
            if isinstance(record, PaymentEvent):
                await self.bus.send(EVENTS, record.payment_key.encode(), self.event_serde.encode(record), None, None,
                                    None)
            else:
                await self.bus.send(LEDGER, record.payment_key.encode(), self.ledger_serde.encode(record), None, None,
                                    None)

    def _take(self, topics: tuple[str, ...], batch: int) -> list[Message]:
        """Up to `batch` unread records, interleaving partitions at random (as a consumer may)."""
        taken: list[Message] = []
        while len(taken) < batch:
            ready = [(t, p) for (t, p), log in self.bus.logs.items()
                     if t in topics and self.positions[(t, p)] < len(log)]
            if not ready:
                break
            tp = self.rng.choice(sorted(ready))
            take = self.rng.randint(1, batch - len(taken))
            log = self.bus.logs[tp]
            start = self.positions[tp]
            taken.extend(log[start:start + take])
            self.positions[tp] = min(len(log), start + take)
        return taken

    def rewind(self, messages: list[Message]) -> None:
        """Forget that `messages` were read (they were never committed)."""
        for message in messages:
            tp = (message.topic, message.partition)
            self.positions[tp] = min(self.positions[tp], message.offset)

    async def step(self, batch: int = 50) -> bool:
        inputs = self._take((EVENTS, LEDGER), batch)
        if inputs:
            await self.join.process(inputs)
        placements = self._take((PLACEMENTS,), batch)
        if placements:
            await self.windows.process(placements)
        return bool(inputs or placements)

    async def run(self, batch: int = 50) -> None:
        while await self.step(batch):
            pass

    def outputs(self) -> list[ReconciliationWindow]:
        serde = reconciliation_serde()
        return [serde.decode(m.value) for m in self.bus.topic(OUTPUT)]


def latest(windows: list[ReconciliationWindow]) -> dict[str, ReconciliationWindow]:
    result: dict[str, ReconciliationWindow] = {}
    for window in windows:
        if window.key not in result or window.revision >= result[window.key].revision:
            result[window.key] = window
    return result


def first(windows: list[ReconciliationWindow]) -> dict[str, ReconciliationWindow]:
    return {w.key: w for w in windows if w.revision == 0}
