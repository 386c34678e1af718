"""Batched reads and writes of a table's partitions, and their changelog records.

Faust's `table[key] = value` sends one changelog record through its send-soon buffer per write
(measured ~160 µs each, more than all the other work per event) and needs the current event in
context. The agents here process whole batches, so they read and write the partition's database in
the worker's own store (`streams.store.WorkerStore`) directly, send the changelog records through the
producer's normal batching path, and record the changelog offset once per partition when the broker
acknowledged. Recovery and standbys are Faust's: they replay the changelog into the same store
through Faust's store interface.

Two rules keep the changelog and the local copy saying the same thing:
- `owned_partitions()` is empty while a rebalance is under way and until Faust has
  restored every active partition, so no agent reads or writes a partition whose
  changelog is still being replayed (recovery would overwrite those writes);
- each table partition has one writer, the agent consuming the input partition of the
  same number, which queues a batch's changelog records before it takes the next batch,
  so the changelog keeps the order of the local writes (recovery keeps the last record
  per key) without a lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from streams.store import WorkerStore

__all__ = ["PartitionedTable"]


class PartitionedTable:
    """Reads and batched writes for one Faust table (raw bytes keys and values)."""

    def __init__(self, app: Any, table: Any) -> None:
        self._app = app
        self.table = table

    @property
    def store(self) -> WorkerStore:
        data = self.table.data
        if not isinstance(data, WorkerStore):
            raise TypeError(f"table {self.table.name!r} must keep its data in the worker's store (streams.store)")
        return data

    @property
    def changelog_topic(self) -> str:
        name: str = self.table.changelog_topic.get_topic_name()
        return name

    def owned_partitions(self) -> frozenset[int]:
        """Partitions this worker may read and write now: actively assigned and fully restored.

        Faust clears `tables.actives_ready` the moment a rebalance starts (in the consumer's
        rebalance callback) and sets it once every active changelog partition is restored.
        """
        if not self._app.tables.actives_ready:
            return frozenset()
        topic = self.changelog_topic
        return frozenset(tp.partition for tp in self._app.assignor.assigned_actives() if tp.topic == topic)

    def get(self, partition: int, key: bytes) -> bytes | None:
        value: bytes | None = self.store.db(partition).get(key)
        return value

    def write_local(self, partition: int, items: dict[bytes, bytes | None]) -> None:
        """Apply `items` (None deletes) to the local partition in one RocksDB write batch.

        Synchronous on purpose: callers read, decide and write without an `await` in between,
        so no other agent on the event loop can interleave a read-modify-write.
        """
        self.store.write(partition, items)

    async def write(self, partition: int, items: dict[bytes, bytes | None]) -> list[asyncio.Future[Any]]:
        """`write_local` then `send_changelog`."""
        self.write_local(partition, items)
        return await self.send_changelog(partition, items)

    async def send_changelog(self, partition: int, items: dict[bytes, bytes | None]) -> list[asyncio.Future[Any]]:
        """Send the changelog records of already-written items; the persisted offset follows their acks."""
        if not items:
            return []
        producer = self._app.producer
        topic = self.changelog_topic
        futures = [await producer.send(topic, key, value, partition, None, None) for key, value in items.items()]
        if futures:
            futures[-1].add_done_callback(lambda fut: self._on_acked(partition, fut))
        return futures

    def _on_acked(self, partition: int, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # not persisted: recovery will read the changelog from the previous offset
        self.store.advance_offset(partition, future.result().offset)

    def scan(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of one local partition, excluding the store's changelog-offset mark."""
        return self.store.scan(partition)

    def scan_prefix(self, partition: int, prefix: bytes, start: bytes | None = None
                    ) -> Iterator[tuple[bytes, bytes]]:
        """Keys starting with `prefix` (from `start` on, when given), in key order (RocksDB iterates sorted)."""
        for key, value in self.store.scan(partition, from_key=max(prefix, start or prefix)):
            if not key.startswith(prefix):
                break
            yield key, value

    def partitions(self) -> list[int]:
        return self.store.partitions()

    def estimated_keys(self) -> int:
        return sum(self.store.estimated_keys(partition) for partition in self.partitions())
