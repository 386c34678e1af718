"""The e2e bench's hop split: each run payment's send times, read from the offsets noted before the run."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from bench.hops import end_offsets, read_stamps
from tests.bench.conftest import TopicMaker
from tests.conftest import KafkaTarget

pytestmark = [pytest.mark.broker, pytest.mark.both_brokers]


async def test_reads_each_payments_first_send_time_after_the_mark_only(
        kafka: KafkaTarget, new_topic: TopicMaker, producer: AIOKafkaProducer) -> None:
    raw, state = await new_topic("hops-raw", 2), await new_topic("hops-state", 2)

    async def send(topic: str, payment: str, at_ms: int, partition: int) -> None:
        value = b'{"data": {"object": {"id": "' + payment.encode() + b'"}}}'
        await (await producer.send(topic, value, partition=partition, timestamp_ms=at_ms))

    await send(raw, "pi_e2e_1_0000000", 1_000, 0)  # before the mark: not this run's
    mark = await end_offsets(kafka.bootstrap, embedded=kafka.is_embedded, topics=(raw, state))
    await send(raw, "pi_e2e_2_0000001", 2_000, 0)
    await send(raw, "pi_e2e_2_0000002", 2_100, 1)
    await send(state, "pi_e2e_2_0000001", 2_050, 1)
    await send(state, "pi_e2e_2_0000001", 2_900, 1)  # a later state of the same payment: the first one counts
    await send(raw, "not-a-bench-payment", 2_200, 1)
    stamps = await read_stamps(kafka.bootstrap, embedded=kafka.is_embedded, raw_topic=raw, state_topic=state,
                               start=mark)
    assert stamps.raw_ms == {"pi_e2e_2_0000001": 2_000, "pi_e2e_2_0000002": 2_100}
    assert stamps.state_ms == {"pi_e2e_2_0000001": 2_050}
