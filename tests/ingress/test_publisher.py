"""Record size and record-level produce errors, on the real broker: one bad record never costs the others."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from ingress.publisher import Publisher
from ingress.rdkafka import ConfluentPublisher
from ingress.signing import sign_stripe
from paystream.core.broker import producer_options
from paystream.core.settings import ENVELOPE_OVERHEAD_BYTES, KAFKA_DEFAULT_MESSAGE_MAX_BYTES
from schemas.serde import envelope_serde
from tests.fixtures.ingress import STRIPE_SECRET
from tests.fixtures.kafka import drain

pytestmark = pytest.mark.both_brokers


@pytest.fixture(params=["confluent", "aiokafka"])
def client(request: pytest.FixtureRequest) -> str:
    """The ingress producer under test (`PAYSTREAM_INGRESS_PRODUCER`)."""
    return str(request.param)


def publisher_class(client: str) -> type[Publisher] | type[ConfluentPublisher]:
    return ConfluentPublisher if client == "confluent" else Publisher


def stripe_body(event_id: str, size: int) -> bytes:
    """A Stripe event of exactly `size` bytes (padded inside the JSON)."""
    head, tail = b'{"id":"%s","type":"charge.succeeded","pad":"' % event_id.encode(), b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def post(client: httpx.AsyncClient, url: str, body: bytes) -> httpx.Response:
    return await client.post(f"{url}/webhooks/stripe", content=body, headers={
        "content-type": "application/json", "stripe-signature": sign_stripe(body, STRIPE_SECRET, int(time.time())),
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"})


async def test_every_body_under_the_413_limit_is_stored_and_fits_a_default_kafka_broker(
        topics: Any, ingress_factory: Any, ingress_settings_factory: Any, consumer_factory: Any, client: str) -> None:
    # MAX_BODY_BYTES at its default (1 MiB)
    settings = ingress_settings_factory(topic_prefix=topics.prefix, ingress_producer=client)
    limit = settings.body_limit_bytes
    assert limit + ENVELOPE_OVERHEAD_BYTES <= KAFKA_DEFAULT_MESSAGE_MAX_BYTES
    server = ingress_factory(settings)
    async with httpx.AsyncClient(timeout=30) as http:
        under = await post(http, server.url, stripe_body("evt_under", limit - 1))
        assert under.status_code == 200, under.text
        # Before issue 14 a body just under MAX_BODY_BYTES passed the 413 check, exceeded the producer's 1 MiB
        # once enveloped, and got 503 on every retry. Now it is refused at once, or stored: never 503.
        for size in (limit + 1, settings.max_body_bytes - 1):
            refused = await post(http, server.url, stripe_body("evt_over", size))
            assert (refused.status_code, refused.json()["error"]) == (413, "body_too_large")
        assert (await post(http, server.url, stripe_body("evt_after", 200))).status_code == 200

    records = await drain(await consumer_factory(topics.raw), expected=2)
    by_id = {envelope_serde().decode(r.value).provider_event_id: r for r in records}
    assert set(by_id) == {"evt_under", "evt_after"}
    stored = by_id["evt_under"]
    assert envelope_serde().decode(stored.value).body == stripe_body("evt_under", limit - 1)
    batch_bytes = DefaultRecordBatchBuilder.estimate_size_in_bytes(stored.key, stored.value, list(stored.headers))
    assert batch_bytes <= KAFKA_DEFAULT_MESSAGE_MAX_BYTES  # a default Apache Kafka broker stores it


async def test_an_oversized_record_fails_alone_while_concurrent_requests_succeed(
        kafka: Any, topics: Any, ingress_factory: Any, ingress_settings_factory: Any, consumer_factory: Any,
        client: str) -> None:
    """A record the producer refuses (here: a producer limit below the body limit) is that request's 413;
    before issue 14 it abandoned the producer and every request in flight got 503."""
    settings = ingress_settings_factory(topic_prefix=topics.prefix)
    publisher = publisher_class(client)(kafka.bootstrap, timeout_s=settings.publish_timeout_s, producer_options={
        **producer_options(embedded=kafka.is_embedded, linger_ms=20), "max_request_size": 64 * 1024})
    server = ingress_factory(settings, publisher=publisher)
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await post(http, server.url, stripe_body("evt_warm", 300))).status_code == 200
        producer = publisher._producer
        bodies = [stripe_body(f"evt_ok_{n}", 300) for n in range(30)]
        bodies.insert(15, stripe_body("evt_huge", 200 * 1024))
        responses = await asyncio.gather(*(post(http, server.url, body) for body in bodies))
        statuses = {envelope_id: r.status_code for envelope_id, r in zip(
            [b.split(b'"')[3].decode() for b in bodies], responses, strict=True)}
        assert statuses.pop("evt_huge") == 413
        assert responses[15].json()["error"] == "record_too_large"
        assert set(statuses.values()) == {200}, statuses
        assert publisher._producer is producer  # never abandoned
        assert (await post(http, server.url, stripe_body("evt_next", 300))).status_code == 200

    ids = {envelope_serde().decode(r.value).provider_event_id
           for r in await drain(await consumer_factory(topics.raw), expected=32)}
    assert ids == {"evt_warm", "evt_next", *(f"evt_ok_{n}" for n in range(30))}


async def test_broker_refusal_is_record_level_and_unavailability_is_not(kafka: Any, topics: Any, client: str) -> None:
    """The publisher's own contract: a too-large record raises RecordRejectedError and keeps the producer."""
    from ingress.exceptions import PublishError, RecordRejectedError

    publisher = publisher_class(client)(kafka.bootstrap, timeout_s=2.0, producer_options={
        **producer_options(embedded=kafka.is_embedded), "max_request_size": 10_000})
    async with publisher:
        producer = publisher._producer
        small = [publisher.publish(topics.raw, b"k%d" % n, b"v" * 100) for n in range(10)]
        results = await asyncio.gather(*small[:5], publisher.publish(topics.raw, b"big", b"v" * 20_000), *small[5:],
                                       return_exceptions=True)
        big = results.pop(5)
        assert isinstance(big, RecordRejectedError) and big.too_large
        assert all(isinstance(r, tuple) for r in results), results
        assert publisher._producer is producer
    closed = publisher_class(client)("127.0.0.1:1", timeout_s=0.5, producer_options=producer_options(embedded=True))
    try:
        await closed.start()
        try:
            await closed.publish(topics.raw, b"k", b"v")
        except PublishError as exc:
            assert not isinstance(exc, RecordRejectedError)
        else:
            raise AssertionError("published without a broker")
    finally:
        await closed.stop()
