"""The e2e bench's hop split: each run payment's send times, read from the offsets noted before the run."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.hops import end_offsets, read_stamps
from paystream.core.broker import producer_options
from tests.conftest import KafkaTarget

pytestmark = [pytest.mark.broker, pytest.mark.both_brokers]


async def test_reads_each_payments_first_send_time_after_the_mark_only(kafka: KafkaTarget) -> None:
    raw, state = f"hops-raw-{uuid.uuid4().hex[:8]}", f"hops-state-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(raw, 2, 1), NewTopic(state, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, **producer_options(embedded=kafka.is_embedded))
    await producer.start()
    try:
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
    finally:
        await producer.stop()
    stamps = await read_stamps(kafka.bootstrap, embedded=kafka.is_embedded, raw_topic=raw, state_topic=state,
                               start=mark)
    assert stamps.raw_ms == {"pi_e2e_2_0000001": 2_000, "pi_e2e_2_0000002": 2_100}
    assert stamps.state_ms == {"pi_e2e_2_0000001": 2_050}
