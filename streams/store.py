"""The worker's own RocksDB store for its tables: one database per partition, owned by paystream.

Faust keeps a table's changelog topic, assignment, recovery and standbys; it reaches the data only
through its documented store interface (`faust.types.StoreT`: `persisted_offset`,
`apply_changelog_batch`, `on_rebalance`, `reset_state`), to which this class is plugged in as the
`paystream://` store (an entry point in `faust.stores`). Everything else — the agents' batched reads
and writes, prefix scans, the changelog offset bookkeeping — is this module's public API, used by
`streams.partitioned.PartitionedTable`. So no code path reaches into Faust's own RocksDB driver, whose
private layout (`_db_for_partition`, `_dbs`) could change in any release.

Two things differ from Faust's driver on purpose:
- a restored changelog batch and the offset it brings the partition to go in **one** RocksDB write
  batch, so a crash mid-restore never leaves an offset ahead of its data;
- a revoked partition's database is closed at once, not left to the garbage collector.
"""

from __future__ import annotations

import shutil
import struct
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from faust.stores.base import Store
from faust.types import TP
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch

__all__ = ["CHANGELOG_OFFSET_KEY", "STORE_URL", "WorkerStore", "write_batch"]

STORE_URL = "paystream://"
"""The app's `store` setting: Faust builds a `WorkerStore` for every table."""

CHANGELOG_OFFSET_KEY = b"\x00changelog-offset"
"""The last changelog offset the local copy reflects; never a payment key nor another mark (`\\x00…`)."""

# Faust's RocksDB defaults are sized for one big table: a 2 GiB block cache and three 64 MiB
# memtables per partition database. A worker has four tables times N partitions of small values, so
# those defaults grew a worker to ~1 GB with 1M dedup keys. These bound each database at a few MiB.
WRITE_BUFFER_BYTES = 2 * 1024 * 1024
WRITE_BUFFERS = 2
TARGET_FILE_BYTES = 8 * 1024 * 1024
BLOCK_CACHE_BYTES = 2 * 1024 * 1024
BLOOM_BITS_PER_KEY = 10
"""Most dedup lookups are for keys never seen: a ~1 % false-positive filter answers them without a read."""

_OFFSET = struct.Struct(">q")
_PER_PARTITION = "paystream tables are read and written per partition (streams.partitioned.PartitionedTable)"


def _rocksdb_options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(WRITE_BUFFER_BYTES)
    options.set_max_write_buffer_number(WRITE_BUFFERS)
    options.set_target_file_size_base(TARGET_FILE_BYTES)
    table = BlockBasedOptions()
    table.set_block_cache(Cache(BLOCK_CACHE_BYTES))
    table.set_bloom_filter(BLOOM_BITS_PER_KEY, True)
    options.set_block_based_table_factory(table)
    return options


class WorkerStore(Store[bytes, bytes]):
    """A Faust table's data as one RocksDB database per partition (raw bytes keys and values)."""

    def __init__(self, url: Any, app: Any, table: Any, **kwargs: Any) -> None:
        kwargs.pop("options", None)  # sized here, not per table (see the constants above)
        super().__init__(url, app, table, **kwargs)
        self._open: dict[int, Rdict] = {}
        self._closed = False

    # -- paystream's API (streams.partitioned) ---------------------------------------------------

    @property
    def directory(self) -> Path:
        return Path(self.app.conf.tabledir)

    def partition_path(self, partition: int) -> Path:
        return self.directory / f"{self.table_name}-{partition}.rocksdb"

    def db(self, partition: int) -> Rdict:
        """The partition's database, opened on first use (a standby's on its first restored batch)."""
        db = self._open.get(partition)
        if db is None:
            self.partition_path(partition).parent.mkdir(parents=True, exist_ok=True)
            db = self._open[partition] = Rdict(str(self.partition_path(partition)), options=_rocksdb_options())
        return db

    def partitions(self) -> list[int]:
        """The partitions with an open database: assigned now (active or standby) or written since."""
        return sorted(self._open)

    def write(self, partition: int, items: Mapping[bytes, bytes | None]) -> None:
        """Apply `items` (None deletes) in one RocksDB write batch."""
        if items:
            self.db(partition).write(write_batch(items))

    def scan(self, partition: int, from_key: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """The partition's entries in key order (from `from_key` on), without the offset mark."""
        iterator = self.db(partition).items(from_key=from_key) if from_key is not None else self.db(partition).items()
        for key, value in iterator:
            if key != CHANGELOG_OFFSET_KEY:
                yield cast(bytes, key), value  # raw mode: keys and values are bytes

    def estimated_keys(self, partition: int) -> int:
        return int(self.db(partition).property_int_value("rocksdb.estimate-num-keys") or 0)

    def advance_offset(self, partition: int, offset: int) -> None:
        """Record an acknowledged changelog offset, unless the partition already reflects a later one."""
        if self._closed or partition not in self._open:
            return  # stopped or revoked meanwhile: a restore reads from the previous offset, which is safe
        current = self.db(partition).get(CHANGELOG_OFFSET_KEY)
        if current is None or offset > int(_OFFSET.unpack(current)[0]):
            self.db(partition).put(CHANGELOG_OFFSET_KEY, _OFFSET.pack(offset))

    # -- Faust's store interface (faust.types.StoreT) ---------------------------------------------

    def persisted_offset(self, tp: TP) -> int | None:
        raw = self.db(tp.partition).get(CHANGELOG_OFFSET_KEY)
        return None if raw is None else int(_OFFSET.unpack(raw)[0])

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.db(tp.partition).put(CHANGELOG_OFFSET_KEY, _OFFSET.pack(offset))

    async def need_active_standby_for(self, tp: TP) -> bool:
        return True

    def apply_changelog_batch(self, batch: Iterable[Any], to_key: Callable[[Any], Any],
                              to_value: Callable[[Any], Any]) -> None:
        """Restore changelog records (raw bytes, so `to_key`/`to_value` are not needed) with their offsets."""
        items: dict[int, dict[bytes, bytes | None]] = defaultdict(dict)
        offsets: dict[int, int] = {}
        for event in batch:
            message = event.message
            items[message.partition][message.key] = message.value
            offsets[message.partition] = max(message.offset, offsets.get(message.partition, -1))
        for partition, writes in items.items():
            writes[CHANGELOG_OFFSET_KEY] = _OFFSET.pack(offsets[partition])
            self.db(partition).write(write_batch(writes))

    def reset_state(self) -> None:
        """Forget every local partition of this table (the changelog in Kafka is untouched)."""
        for partition in list(self._open):
            self._close(partition)
        for path in self.directory.glob(f"{self.table_name}-*.rocksdb"):
            shutil.rmtree(path, ignore_errors=True)

    async def on_rebalance(self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP],
                           generation_id: int = 0) -> None:
        topic = self._changelog_topic()
        for tp in revoked:
            if tp.topic == topic:
                self._close(tp.partition)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        return None

    async def backup_partition(self, tp: TP | int, flush: bool = True, purge: bool = False, keep: int = 1) -> None:
        raise NotImplementedError("the changelog is the backup: paystream state rebuild")

    def restore_backup(self, tp: TP | int, latest: bool = True, backup_id: int = 0) -> None:
        raise NotImplementedError("the changelog is the backup: paystream state rebuild")

    async def on_stop(self) -> None:
        self.close()

    def close(self) -> None:
        """Close every open database; acknowledgements that arrive later record nothing."""
        self._closed = True
        for partition in list(self._open):
            self._close(partition)

    # Faust's mapping interface reads the current event's partition; the worker's batches name theirs.
    def __getitem__(self, key: Any) -> Any:
        raise TypeError(_PER_PARTITION)

    def __setitem__(self, key: Any, value: Any) -> None:
        raise TypeError(_PER_PARTITION)

    def __delitem__(self, key: Any) -> None:
        raise TypeError(_PER_PARTITION)

    def __iter__(self) -> Iterator[Any]:
        for partition in self.partitions():
            for key, _ in self.scan(partition):
                yield key

    def __len__(self) -> int:
        return sum(self.estimated_keys(partition) for partition in self.partitions())

    def __contains__(self, key: object) -> bool:
        return any(isinstance(key, bytes) and self.db(p).get(key) is not None for p in self.partitions())

    # -- internals ------------------------------------------------------------------------------

    def _changelog_topic(self) -> str:
        name: str = self.table.changelog_topic.get_topic_name()
        return name

    def _close(self, partition: int) -> None:
        db = self._open.pop(partition, None)
        if db is not None:
            db.close()


def write_batch(items: Mapping[bytes, bytes | None]) -> WriteBatch:
    """One RocksDB write batch: a value puts the key, None deletes it."""
    batch = WriteBatch(raw_mode=True)
    for key, value in items.items():
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    return batch
