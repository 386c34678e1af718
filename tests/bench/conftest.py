"""Fixtures for the benchmark helpers' tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from paystream.core.broker import producer_options
from tests.conftest import KafkaTarget

TopicMaker = Callable[[str, int], Awaitable[str]]


@pytest.fixture
def new_topic(kafka: KafkaTarget) -> TopicMaker:
    """`await new_topic(prefix, partitions)`: a fresh topic on the test's broker; returns its name."""
    async def make(prefix: str, partitions: int) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            await admin.close()
        return name

    return make


@pytest.fixture
async def producer(kafka: KafkaTarget) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer with the project's settings for the test's broker."""
    started = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, **producer_options(embedded=kafka.is_embedded))
    await started.start()
    try:
        yield started
    finally:
        await started.stop()
