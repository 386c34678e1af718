"""In-memory stand-ins for a worker's broker side and tables, to drive `Pipeline` in-process.

`Producer` appends to per-topic logs (the broker); `MemoryTable` is the `PartitionedTable` surface
(one worker's local RocksDB) whose changelog records go through the producer; `Ownership` is what
Faust would say about assignment and restore. `restore` rebuilds a table from the changelog the way
Faust's recovery does (the last record per key wins).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.streams.reconcile.support import Message

__all__ = ["PARTITIONS", "MemoryTable", "Message", "Ownership", "Producer", "restore"]

PARTITIONS = 4


class Producer:
    """Appends to per-topic logs; `hold(topic)` makes the next send to that topic wait for `release()`."""

    def __init__(self) -> None:
        self.logs: dict[str, list[Message]] = defaultdict(list)
        self._held: set[str] = set()
        self._gate = asyncio.Event()
        self.failing: set[str] = set()
        """Topics whose sends are not acknowledged (their futures fail, nothing is appended)."""
        self.lost: set[str] = set()
        """Topics whose sends are never acknowledged nor stored: the process dies before the ack."""
        self._next: dict[tuple[str, int], int] = defaultdict(int)

    def offset(self, topic: str, partition: int) -> int:
        """The next offset of a topic partition (records made by a test take one too)."""
        offset = self._next[(topic, partition)]
        self._next[(topic, partition)] += 1
        return offset

    def hold(self, topic: str) -> None:
        self._held.add(topic)
        self._gate.clear()

    def release(self) -> None:
        self._held.clear()
        self._gate.set()

    async def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None, timestamp: Any,
                   headers: Any) -> asyncio.Future[Any]:
        if topic in self._held:
            self._held.discard(topic)
            await self._gate.wait()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if topic in self.lost:
            return future  # pending for ever
        if topic in self.failing:
            future.set_exception(TimeoutError(f"{topic}: not acknowledged"))
            return future
        partition = partition or 0
        self.logs[topic].append(Message(topic, partition, self.offset(topic, partition), key, value,
                                        list(headers or [])))  # a None value is a tombstone
        future.set_result(None)
        return future


@dataclass
class Ownership:
    """What Faust would say: are the tables restored, and which partitions are ours."""

    ready: bool = True
    actives: frozenset[int] = frozenset(range(PARTITIONS))

    def owned(self) -> frozenset[int]:
        return self.actives if self.ready else frozenset()


class MemoryTable:
    """The PartitionedTable surface the pipeline uses, in memory; changelog records go through the producer."""

    def __init__(self, producer: Producer, owner: Ownership, changelog: str) -> None:
        self.changelog = changelog
        self.data: dict[int, dict[bytes, bytes]] = defaultdict(dict)
        self._producer = producer
        self._owner = owner

    def owned_partitions(self) -> frozenset[int]:
        return self._owner.owned()

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.data[partition].get(key)

    def write_local(self, partition: int, items: dict[bytes, bytes | None]) -> None:
        for key, value in items.items():
            if value is None:
                self.data[partition].pop(key, None)
            else:
                self.data[partition][key] = value

    async def send_changelog(self, partition: int, items: dict[bytes, bytes | None]) -> list[asyncio.Future[Any]]:
        send = self._producer.send
        return [await send(self.changelog, key, value, partition, None, None) for key, value in items.items()]

    def partitions(self) -> list[int]:
        return sorted(self.data)

    def scan_prefix(self, partition: int, prefix: bytes, start: bytes | None = None
                    ) -> Iterator[tuple[bytes, bytes]]:
        """Like RocksDB: keys in order, from `start` on."""
        items = sorted(self.data[partition].items())
        yield from [(k, v) for k, v in items if k.startswith(prefix) and (start is None or k >= start)]

    def scan(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        yield from list(self.data[partition].items())

    def estimated_keys(self) -> int:
        return sum(len(entries) for entries in self.data.values())


def restore(table: MemoryTable, partitions: set[int]) -> None:
    """Replace `partitions` of the local copy with what the changelog holds (Faust's recovery, no standby:
    the last record per key wins, a tombstone deletes)."""
    for partition in partitions:
        table.data[partition] = {}
    for record in table._producer.logs[table.changelog]:
        if record.partition in partitions and record.key is not None:
            table.write_local(record.partition, {record.key: record.value})
