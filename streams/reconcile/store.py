"""What the two stages need from a table partition and the producer, so tests and the benchmark can stand in.

In the worker, `PrefixTable` is a Faust table read and written per partition
(see `streams.partitioned`), plus ordered prefix scans over its RocksDB.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from schemas.topics import partition_for
from streams.partitioned import PartitionedTable

__all__ = ["PartitionStore", "PrefixTable", "Producer", "gather", "partition_for"]


class PartitionStore(Protocol):
    def get(self, partition: int, key: bytes) -> bytes | None: ...

    async def write(self, partition: int, items: dict[bytes, bytes | None]) -> list[asyncio.Future[Any]]: ...

    def scan_prefix(self, partition: int, prefix: bytes, start: bytes | None = None
                    ) -> Iterator[tuple[bytes, bytes]]: ...


class Producer(Protocol):
    """Faust's producer: `send` queues a record and returns a future for its acknowledgement."""

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any) -> asyncio.Future[Any]: ...


class PrefixTable(PartitionedTable):
    """The reconciliation stores: a `PartitionedTable` (which scans by prefix) under the store protocol."""


async def gather(futures: Sequence[asyncio.Future[Any]]) -> None:
    """Wait for acknowledgements; a failed send raises, so nothing after it is marked done."""
    if futures:
        await asyncio.gather(*futures)
