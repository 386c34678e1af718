"""Direct, batched access to a Faust table's RocksDB partitions and changelog.

Faust's `table[key] = value` sends one changelog record through its send-soon
buffer per write (measured ~160 µs each, more than all the other work per event)
and needs the current event in context. The agents here process whole batches,
so they read and write the partition's RocksDB directly, send the changelog
records through the producer's normal batching path, and record the persisted
changelog offset once per partition when the broker acknowledged — the same
bookkeeping Faust does, without the per-key cost. Recovery and standbys are
untouched: they read the changelog exactly as for any Faust table.

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

from faust.types import TP

__all__ = ["TABLE_OPTIONS", "PartitionedTable"]

# Faust's RocksDB defaults are sized for one big table: a 2 GiB block cache and three 64 MiB
# memtables per partition database. A worker has four tables times N partitions of small values, so
# those defaults grew a worker to ~1 GB with 1M dedup keys. These bound each database at a few MiB.
TABLE_OPTIONS: dict[str, object] = {
    "driver": "rocksdict",
    "write_buffer_size": 2 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "target_file_size_base": 8 * 1024 * 1024,
    "block_cache_size": 2 * 1024 * 1024,
    "block_cache_compressed_size": 0,
}


class PartitionedTable:
    """Reads and batched writes for one Faust table (raw bytes keys and values)."""

    def __init__(self, app: Any, table: Any) -> None:
        self._app = app
        self.table = table

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

    def _db(self, partition: int) -> Any:
        return self.table.data._db_for_partition(partition)

    def get(self, partition: int, key: bytes) -> bytes | None:
        value: bytes | None = self._db(partition).get(key)
        return value

    def write_local(self, partition: int, items: dict[bytes, bytes | None]) -> None:
        """Apply `items` (None deletes) to the local partition in one RocksDB write batch.

        Synchronous on purpose: callers read, decide and write without an `await` in between,
        so no other agent on the event loop can interleave a read-modify-write.
        """
        if not items:
            return
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for key, value in items.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._db(partition).write(batch)

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
        offset = future.result().offset
        tp = TP(self.changelog_topic, partition)
        previous = self.table.data.persisted_offset(tp)
        if previous is None or offset > previous:
            self.table.data.set_persisted_offset(tp, offset)

    def scan(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of one local partition, excluding Faust's own bookkeeping key."""
        offset_key = self.table.data.offset_key
        for key, value in self._db(partition).items():
            if key != offset_key:
                yield key, value

    def scan_prefix(self, partition: int, prefix: bytes, start: bytes | None = None
                    ) -> Iterator[tuple[bytes, bytes]]:
        """Keys starting with `prefix` (from `start` on, when given), in key order (RocksDB iterates sorted)."""
        offset_key = self.table.data.offset_key
        for key, value in self._db(partition).items(from_key=max(prefix, start or prefix)):
            if key == offset_key:
                continue  # Faust's own bookkeeping, not ours
            if not key.startswith(prefix):
                break
            yield key, value

    def partitions(self) -> list[int]:
        return sorted(self.table.data._dbs)

    def estimated_keys(self) -> int:
        total = 0
        for partition in self.partitions():
            count = self._db(partition).property_int_value("rocksdb.estimate-num-keys")
            total += int(count or 0)
        return total
