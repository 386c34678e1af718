"""Where an e2e run's time went, read from the records' own timestamps (`BENCH_HOPS=1`).

Every record carries the wall-clock time its producer sent it: the ingress's raw webhook and the
worker's payment state. With the moment the bench saw the row, each payment's end to end splits
into the worker hop (raw sent -> state sent: the worker's fetch, batch and processing) and the sink
hop (state sent -> row seen: the produce, the sink's fetch, batch and database write, the 10 ms poll).
Read after the run from the offsets noted before it, so the load never pays for it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient

from paystream.core.broker import CompatConsumer

__all__ = ["Stamps", "end_offsets", "read_stamps"]

_PAYMENT_ID = re.compile(rb"pi_e2e_\d+_\d{7}")


@dataclass(frozen=True)
class Stamps:
    """Send time (epoch ms) per payment id, first record wins."""

    raw_ms: dict[str, int]
    state_ms: dict[str, int]


@asynccontextmanager
async def _consumer(bootstrap: str, embedded: bool) -> AsyncIterator[CompatConsumer]:
    consumer = CompatConsumer(bootstrap_servers=bootstrap, embedded=embedded, enable_auto_commit=False,
                              group_id=None, max_partition_fetch_bytes=4 << 20)
    await consumer.start()
    await asyncio.sleep(0)  # aiokafka 0.14: stopping before its no-group coordinator task first ran raises
    try:
        yield consumer
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, *, embedded: bool, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """Each partition's log end now: where the next run's records will start."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
    finally:
        await client.close()
    partitions = [TopicPartition(topic, p) for topic in topics
                  for p in sorted(cluster.partitions_for_topic(topic) or ())]
    async with _consumer(bootstrap, embedded) as consumer:
        return dict(await consumer.end_offsets(partitions))


async def read_stamps(bootstrap: str, *, embedded: bool, raw_topic: str, state_topic: str,
                      start: dict[TopicPartition, int]) -> Stamps:
    """The send time of each run payment's raw webhook and first state, from `start` (partitions of the two
    topics) to the log end."""
    stamps = Stamps({}, {})
    async with _consumer(bootstrap, embedded) as consumer:
        partitions = list(start)
        end = await consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if end[tp] > start[tp]}
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, start[tp])
        while pending:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                into = stamps.raw_ms if tp.topic == raw_topic else stamps.state_ms
                for record in records:
                    found = _PAYMENT_ID.search(record.value or b"")
                    if found is not None and record.timestamp is not None:
                        into.setdefault(found.group().decode(), record.timestamp)
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
    return stamps
