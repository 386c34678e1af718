"""How many record batches a broker stores per topic: what an embedded-broker fetch pays for.

The embedded broker lists every stored batch of a partition on each fetch that has records to return
(compat quirk 9), so the e2e report counts them next to the latency they explain. Read with plain
Fetch requests from offset 0 through the client's own connection; works on either broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords

__all__ = ["Stored", "count_stored_batches"]

_CHUNK_BYTES = 8 << 20


@dataclass(frozen=True)
class Stored:
    batches: int
    records: int
    partitions: int

    @property
    def batches_per_partition(self) -> float:
        return self.batches / max(self.partitions, 1)

    @property
    def records_per_batch(self) -> float:
        return self.records / max(self.batches, 1)


async def count_stored_batches(bootstrap: str, topics: Iterable[str]) -> dict[str, Stored]:
    topics = list(topics)
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
        counts = {}
        for topic in topics:
            partitions = sorted(cluster.partitions_for_topic(topic) or ())
            batches = records = 0
            for partition in partitions:
                tp = TopicPartition(topic, partition)
                b, r = await _count_partition(client, cluster.leader_for_partition(tp), tp)
                batches, records = batches + b, records + r
            counts[topic] = Stored(batches, records, len(partitions))
        return counts
    finally:
        await client.close()


async def _count_partition(client: AIOKafkaClient, node: int, tp: TopicPartition) -> tuple[int, int]:
    batches = records = offset = 0
    while True:
        request = FetchRequest(20, 1, _CHUNK_BYTES, 0, [(tp.topic, [(tp.partition, offset, _CHUNK_BYTES)])])
        part = (await client.send(node, request)).topics[0][1][0]
        error_code, high_watermark, data = part[1], part[2], part[-1]
        if error_code != 0:
            raise RuntimeError(f"fetch of {tp} failed with error code {error_code}")
        if offset >= high_watermark or not data:
            return batches, records
        chunk = MemoryRecords(data)
        next_offset = offset
        while (batch := chunk.next_batch()) is not None:
            batches += 1
            for record in batch:
                records += 1
                next_offset = record.offset + 1
        if next_offset <= offset:
            raise RuntimeError(f"no progress reading {tp} at offset {offset}")
        offset = next_offset
