"""Helpers for reconciliation against a real worker: publish the script, read the windows it emits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.records import LedgerEntry, PaymentEvent, ReconciliationWindow
from schemas.serde import ledger_serde, payment_event_serde, reconciliation_serde
from schemas.topics import TopicCatalog
from tests.fixtures.streams import WorkerProcess
from tests.streams.reconcile.day import GRACE, HOUR
from tests.streams.reconcile.support import partition_for

__all__ = ["Windows", "expected_closed", "publish", "wait_until"]


async def publish(producer: AIOKafkaProducer, topics: TopicCatalog, records: Iterable[PaymentEvent | LedgerEntry]
                  ) -> None:
    """In order, from one producer: each partition sees the records in script order."""
    events, ledger = payment_event_serde(), ledger_serde()
    futures = []
    for record in records:
        if isinstance(record, PaymentEvent):
            futures.append(await producer.send(topics.events, events.encode(record), key=record.payment_key.encode()))
        else:
            futures.append(await producer.send(topics.ledger, ledger.encode(record), key=record.payment_key.encode()))
    await asyncio.gather(*futures)


class Windows:
    """Everything emitted on payments.reconciliation.v1 so far."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.records: list[ReconciliationWindow] = []
        self.keys: list[bytes] = []
        self._serde = reconciliation_serde()

    async def poll(self) -> None:
        batches = await self.consumer.getmany(timeout_ms=200)
        for records in batches.values():
            for record in records:
                self.records.append(self._serde.decode(record.value))
                self.keys.append(record.key)

    async def until(self, predicate: Callable[[list[ReconciliationWindow]], bool], timeout_s: float = 90,
                    worker: WorkerProcess | None = None) -> list[ReconciliationWindow]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await self.poll()
            if predicate(self.records):
                return self.records
        state = ""
        if worker is not None:
            try:  # what the worker believes (clocks, watermarks, open windows) says why a window stayed open
                state = json.dumps(worker.get("/reconciliation/summary").json()["worker"], indent=1)
            except Exception as exc:  # a diagnostic only
                state = f"(summary unavailable: {exc!r})"
        tail = worker.tail(40) if worker is not None else ""
        raise AssertionError(f"windows not as expected in {timeout_s}s ({len(self.records)} records)\n{state}\n{tail}")

    async def settle(self, quiet_s: float = 1.5) -> None:
        """Read until nothing new arrives for `quiet_s` (used only to show nothing more comes)."""
        count, last = len(self.records), time.monotonic()
        while time.monotonic() - last < quiet_s:
            await self.poll()
            if len(self.records) != count:
                count, last = len(self.records), time.monotonic()


@pytest.fixture
async def windows(consumer_factory: Any, topics: TopicCatalog) -> Windows:
    return Windows(await consumer_factory(topics.reconciliation))


def expected_closed(events: list[PaymentEvent], partitions: int, keys: Iterable[str],
                    starts: dict[str, Any]) -> set[str]:
    """The windows a worker must have closed after reading `events`: the watermark is the lowest
    partition clock, and a window closes at its end + grace."""
    clocks: dict[int, Any] = {}
    for event in events:
        partition = partition_for(event.payment_key.encode(), partitions)
        clocks[partition] = max(clocks.get(partition, event.occurred_at), event.occurred_at)
    if len(clocks) < partitions:
        return set()
    mark = min(clocks.values())
    return {key for key in keys if starts[key] + HOUR + GRACE <= mark}


async def wait_until(predicate: Callable[[], Any], timeout_s: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception:  # the worker may be restarting
            result = None
        if result:
            return result
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what} not met in {timeout_s}s")
