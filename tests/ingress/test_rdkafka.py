"""The librdkafka producer (`PAYSTREAM_INGRESS_PRODUCER=confluent`): placement, bounds and refusals.

The contract tests shared with aiokafka (size limits, record-level refusal, broker down,
paused broker) run for both clients in `test_publisher.py` / `test_broker_down.py`; these
cover what is specific to librdkafka.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from ingress.context import build_context
from ingress.exceptions import PublishError, RecordRejectedError
from ingress.rdkafka import ConfluentPublisher, librdkafka_config, librdkafka_timeout_ms
from paystream.core.broker import producer_options
from schemas.topics import TopicCatalog, ensure_topics, partition_for
from tests.fixtures.kafka import drain


@pytest.mark.both_brokers
async def test_keys_land_where_aiokafka_and_partition_for_put_them(kafka: Any, topic_catalog_factory: Any) -> None:
    """`murmur2_random` = Java's and aiokafka's murmur2 placement: dedup and state rely on co-partitioning."""
    catalog = topic_catalog_factory(partitions=8)
    await ensure_topics(kafka.bootstrap, catalog)
    keys = [b"stripe:evt_%d" % n for n in range(300)] + [b"paypal:WH-%d" % n for n in range(100)]
    async with ConfluentPublisher(kafka.bootstrap, producer_options=producer_options(embedded=kafka.is_embedded),
                                  timeout_s=10.0) as publisher:
        placed = await asyncio.gather(*(publisher.publish(catalog.raw, key, b"v") for key in keys))
    aiokafka = DefaultPartitioner()
    all_partitions = list(range(8))
    for key, (partition, _offset) in zip(keys, placed, strict=True):
        assert partition == partition_for(key, 8) == aiokafka(key, all_partitions, all_partitions), key
    assert len({partition for partition, _ in placed}) == 8


def test_idempotent_on_apache_kafka_only_and_unknown_options_refused(ingress_settings_factory: Any) -> None:
    """Idempotence follows `producer_options` (off on the embedded broker: see ingress/rdkafka.py)."""
    for embedded in (False, True):
        context = build_context(ingress_settings_factory(kafka_bootstrap="127.0.0.1:9", embedded_broker=embedded))
        publisher = context.publisher
        assert isinstance(publisher, ConfluentPublisher)
        assert publisher._config["enable.idempotence"] is (not embedded)
        assert publisher._config["acks"] == "all"
        assert publisher._config["partitioner"] == "murmur2_random"
        # librdkafka's own bound, below the 2 s publish bound: it reports a record it cannot deliver first
        assert publisher._config["message.timeout.ms"] == librdkafka_timeout_ms(2.0) == 1500
    aio = build_context(ingress_settings_factory(kafka_bootstrap="127.0.0.1:9", ingress_producer="aiokafka"))
    assert type(aio.publisher).__name__ == "Publisher"
    with pytest.raises(ValueError, match="retry_backoff_ms"):
        librdkafka_config({"acks": "all", "retry_backoff_ms": 10})


async def test_timed_out_records_are_purged_and_never_stored_later(broker_factory: Any) -> None:
    """The aiokafka publisher had to clear a private accumulator; here `purge()` and `message.timeout.ms` do it,
    and the producer survives: librdkafka reconnects to the next broker incarnation by itself."""
    broker = broker_factory().start()
    catalog = TopicCatalog(partitions=2)
    await ensure_topics(broker.bootstrap, catalog)
    async with ConfluentPublisher(broker.bootstrap, producer_options=producer_options(embedded=True),
                                  timeout_s=1.0) as publisher:
        await publisher.publish(catalog.raw, b"before", b"v")
        producer = publisher._producer
        port = broker.port
        broker.stop()
        started = time.monotonic()
        failed = await asyncio.gather(*(publisher.publish(catalog.raw, b"down-%d" % n, b"v") for n in range(20)),
                                      return_exceptions=True)
        assert all(isinstance(r, PublishError) and not isinstance(r, RecordRejectedError) for r in failed), failed
        assert time.monotonic() - started < 3.0  # bounded by timeout_s, not by librdkafka's retries
        assert not await publisher.ready()
        broker = broker_factory(port=port).start()  # a new, empty incarnation on the same port
        await ensure_topics(broker.bootstrap, catalog)
        await asyncio.sleep(2.5)  # longer than librdkafka's 1 s timeout scan: anything left queued would go now
        deadline = time.monotonic() + 20
        while True:
            try:
                await publisher.publish(catalog.raw, b"after", b"v")
                break
            except PublishError:
                assert time.monotonic() < deadline
        assert publisher._producer is producer  # never replaced: no fatal error
        assert await publisher.ready(cache_s=0)
    from aiokafka import TopicPartition

    from paystream.core.broker import CompatConsumer

    consumer = CompatConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(catalog.raw, p) for p in range(2)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        stored = [r.key for r in await drain(consumer, idle_s=1.0)]
    finally:
        await consumer.stop()
    assert stored == [b"after"]


def test_librdkafka_gives_up_on_a_record_a_timeout_scan_before_the_publish_bound() -> None:
    """librdkafka checks record timeouts once a second: its bound leaves that (and more) before ours."""
    assert librdkafka_timeout_ms(5.0) == 3500  # the default PUBLISH_TIMEOUT_S
    assert librdkafka_timeout_ms(30.0) == 28_500
    assert librdkafka_timeout_ms(1.0) == 750  # a short bound: three quarters for librdkafka, the purge covers it
    assert librdkafka_timeout_ms(2.5) == 1500


async def test_a_record_librdkafka_gives_up_on_fails_alone_before_the_bound(
        apache_kafka: Any, topic_catalog_factory: Any) -> None:
    """A record librdkafka cannot deliver (its topic does not exist) is reported by librdkafka itself before the
    publish bound, and nothing queued beside it is purged: during a broker failover the purge that followed
    our bound failed requests whose partitions had a live leader (tests/reliability/test_broker_failover.py)."""
    catalog = topic_catalog_factory(partitions=2)
    await ensure_topics(apache_kafka.bootstrap, catalog)
    timeout_s = 4.0
    async with ConfluentPublisher(apache_kafka.bootstrap, producer_options=producer_options(embedded=False),
                                  timeout_s=timeout_s) as publisher:
        await publisher.publish(catalog.raw, b"warm", b"v")
        assert publisher._running is not None
        running, purges = publisher._running, []
        real = running.producer

        class Spy:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def purge(self, *args: Any, **kwargs: Any) -> None:
                purges.append(kwargs)
                real.purge(*args, **kwargs)

        running.producer = Spy()  # type: ignore[assignment]
        started = time.monotonic()
        lost = asyncio.create_task(publisher.publish(f"{catalog.prefix}no-such-topic", b"k", b"v"))
        healthy: list[tuple[int, int]] = []
        while not lost.done():
            healthy.append(await publisher.publish(catalog.raw, b"k%d" % len(healthy), b"v"))
            await asyncio.sleep(0.05)
        with pytest.raises(PublishError) as failed:
            await lost
        elapsed = time.monotonic() - started
        assert "_MSG_TIMED_OUT" in str(failed.value) or "UNKNOWN" in str(failed.value), failed.value
        assert elapsed < timeout_s, elapsed
        assert purges == [], purges
        assert len(healthy) > 10
        running.producer = real


@pytest.mark.both_brokers
async def test_a_record_the_broker_refuses_is_rejected_alone(kafka: Any, topic_catalog_factory: Any) -> None:
    """The topic's max.message.bytes is below the producer's limit: the broker's refusal is that record's 413."""
    if kafka.is_embedded:
        pytest.skip("the embedded broker does not enforce max.message.bytes per topic")
    catalog = topic_catalog_factory(partitions=2)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(catalog.raw, 2, 1, topic_configs={"max.message.bytes": "20000"})])
    finally:
        await admin.close()
    async with ConfluentPublisher(kafka.bootstrap, producer_options=producer_options(embedded=False),
                                  timeout_s=5.0) as publisher:
        producer = publisher._producer
        small = [publisher.publish(catalog.raw, b"k%d" % n, b"v" * 100) for n in range(10)]
        results = await asyncio.gather(*small[:5], publisher.publish(catalog.raw, b"big", b"v" * 50_000),
                                       *small[5:], return_exceptions=True)
        big = results.pop(5)
        assert isinstance(big, RecordRejectedError) and big.too_large, big
        assert all(isinstance(r, tuple) for r in results), results
        assert publisher._producer is producer
        assert await publisher.publish(catalog.raw, b"next", b"v") is not None
