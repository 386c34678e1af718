"""The e2e bench's batch count: one produce request per partition is one stored batch, on either broker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from bench.stored_batches import count_stored_batches
from tests.bench.conftest import TopicMaker
from tests.conftest import KafkaTarget

pytestmark = [pytest.mark.broker, pytest.mark.both_brokers]


async def test_counts_each_produced_batch_and_its_records(
        kafka: KafkaTarget, new_topic: TopicMaker, producer: AIOKafkaProducer) -> None:
    a, b = await new_topic("batches-a", 2), await new_topic("batches-b", 1)
    for size in (1, 5, 40):  # three requests per partition: each batch holds `size` records
        for partition in (0, 1):
            batch = producer.create_batch()
            for n in range(size):
                batch.append(key=None, value=f"{size}-{n}".encode(), timestamp=None)
            await (await producer.send_batch(batch, a, partition=partition))
    await asyncio.gather(*[await producer.send(b, b"x", partition=0) for _ in range(3)])
    counts = await count_stored_batches(kafka.bootstrap, [a, b])
    assert (counts[a].batches, counts[a].records, counts[a].partitions) == (6, 92, 2)
    assert counts[a].batches_per_partition == 3
    assert counts[b].records == 3 and 1 <= counts[b].batches <= 3
