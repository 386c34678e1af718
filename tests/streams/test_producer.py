"""The worker's producer is idempotent on Apache Kafka (a retried batch is stored once), never on the embedded broker.

The failover that needs it (a leader killed while a batch was in flight) is
tests/reliability/test_broker_failover.py; this checks what the worker builds.
"""

from __future__ import annotations

from pathlib import Path

import faust
from faust.transport.drivers.aiokafka import Producer

from paystream.core.settings import Settings
from streams.app import create_worker
from streams.producer import IdempotentProducer, use_idempotent_producer


async def test_the_worker_on_apache_kafka_builds_idempotent_producers(tmp_path: Path) -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:9", embedded_broker=False, data_dir=tmp_path)
    app = create_worker(settings).app
    assert isinstance(app.producer, IdempotentProducer)
    client = app.producer._new_producer()  # what Faust starts; nothing connects before start()
    try:
        assert client._txn_manager is not None and client._txn_manager.transactional_id is None
    finally:
        await client.stop()


def test_the_embedded_broker_keeps_fausts_plain_producer() -> None:
    """aiokafka's idempotence does not work against the embedded broker (quirk 1)."""
    app = faust.App("producer-test", broker="kafka://127.0.0.1:9")
    assert use_idempotent_producer(app, embedded=True) is False
    assert app.transport.Producer is Producer
    assert use_idempotent_producer(app, embedded=False) is True
    assert app.transport.Producer is IdempotentProducer
    assert type(app.transport).Producer is Producer  # the app's own transport only, no class patched
