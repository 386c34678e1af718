"""Read a topic from its beginning: to the end it has now (replays, rebuilds), or on and on (live views)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from paystream.core.broker import CompatConsumer

__all__ = ["follow", "read_to_end"]


async def read_to_end(bootstrap: str, topic: str, *, embedded: bool, partitions: Iterable[int] | None = None
                      ) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record now on `topic` (or on the given partitions), oldest first per partition; then stops."""
    consumer = CompatConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                              embedded=embedded)
    await consumer.start()
    try:
        existing = sorted(await consumer._client._wait_on_metadata(topic))
        wanted = existing if partitions is None else [p for p in partitions if p in existing]
        assigned = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        await consumer.seek_to_beginning(*assigned)
        remaining = {tp for tp in assigned if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            if not batch:
                remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
                continue
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp] - 1:
                        remaining.discard(tp)
                    if record.offset < ends[tp]:
                        yield record
    finally:
        await consumer.stop()


async def follow(bootstrap: str, topic: str, partitions: Iterable[int], **options: Any
                 ) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` from the beginning, then each new one, until the caller stops iterating."""
    consumer = CompatConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                              **options)
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for records in batches.values():
                for record in records:
                    yield record
    finally:
        await consumer.stop()
