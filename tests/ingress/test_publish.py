"""Posted → on payments.webhooks.raw.v1 → decodes to the exact bytes, key and trace context."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.stored_batches import count_stored_batches
from ingress.signing import sign_standard, sign_stripe
from schemas.serde import envelope_serde
from tests.fixtures.ingress import STANDARD_SECRET, STRIPE_SECRET
from tests.fixtures.kafka import drain

pytestmark = pytest.mark.both_brokers

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"


async def test_stripe_event_lands_byte_exact(topics: Any, ingress_factory: Any, ingress_settings_factory: Any,
                                             consumer_factory: Any) -> None:
    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix))
    body = (b'{\n  "id": "evt_1PgcX",\n  "object": "event",\n  "type": "payment_intent.succeeded",\n'
            b'  "created": 1722600000,\n  "livemode": false,\n  "data": {"object": {"amount": 1.0e2}}\n}\n')
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{server.url}/webhooks/stripe", content=body, headers={
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": sign_stripe(body, STRIPE_SECRET, int(time.time())),
            "traceparent": incoming, "x-request-id": "req-123"})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "req-123"
    [record] = await drain(await consumer_factory(topics.raw), expected=1)
    envelope = envelope_serde().decode(record.value)
    assert record.key == b"stripe:evt_1PgcX"
    assert envelope.body == body
    assert envelope.envelope_id == response.json()["envelope_id"]
    assert (envelope.provider, envelope.source, envelope.event_type) == ("stripe", "stripe", "payment_intent.succeeded")
    assert envelope.livemode is False
    assert envelope.provider_created_at is not None and envelope.provider_created_at.timestamp() == 1722600000
    assert envelope.content_type == "application/json; charset=utf-8"
    assert envelope.verified_by == "stripe-v1:secret#1"
    assert STRIPE_SECRET not in repr(envelope)
    # our own span inside the caller's trace, in the envelope and the Kafka headers
    assert envelope.traceparent is not None
    assert envelope.traceparent.split("-")[1] == incoming.split("-")[1]
    assert envelope.traceparent.split("-")[2] != incoming.split("-")[2]
    assert dict(record.headers)["traceparent"] == envelope.traceparent.encode()


async def test_a_burst_shares_raw_topic_batches_on_the_embedded_broker(kafka: Any, topics: Any, ingress_factory: Any,
                                                                        ingress_settings_factory: Any) -> None:
    """Quirk 9: each stored batch costs every later fetch there, so the ingress lingers 100 ms and a burst of
    webhooks lands in about one batch per partition (Apache Kafka keeps 1 ms: its fetch does not pay per batch)."""
    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix))
    bodies = [b'{"id":"evt_burst_%d","type":"payment_intent.succeeded","created":1722600000}' % n for n in range(40)]
    async with httpx.AsyncClient() as client:
        responses = await asyncio.gather(*(client.post(f"{server.url}/webhooks/stripe", content=body, headers={
            "content-type": "application/json", "stripe-signature": sign_stripe(body, STRIPE_SECRET, int(time.time()))})
            for body in bodies))
    assert [r.status_code for r in responses] == [200] * len(bodies)
    stored = (await count_stored_batches(kafka.bootstrap, [topics.raw]))[topics.raw]
    assert stored.records == len(bodies)
    if kafka.is_embedded:
        assert stored.batches <= 2 * stored.partitions, stored


async def test_rotation_accepts_either_secret(topics: Any, ingress_factory: Any, ingress_settings_factory: Any,
                                              consumer_factory: Any) -> None:
    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix,
                                                      stripe_webhook_secrets=["whsec_old", "whsec_new"]))
    async with httpx.AsyncClient() as client:
        for n, secret in enumerate(["whsec_old", "whsec_new", "whsec_gone"]):
            body = b'{"id":"evt_r%d","type":"charge.succeeded"}' % n
            response = await client.post(f"{server.url}/webhooks/stripe", content=body, headers={
                "content-type": "application/json", "stripe-signature": sign_stripe(body, secret, int(time.time()))})
            assert response.status_code == (400 if secret == "whsec_gone" else 200)
    records = await drain(await consumer_factory(topics.raw), expected=2)
    assert sorted(envelope_serde().decode(r.value).verified_by for r in records) == \
        ["stripe-v1:secret#1", "stripe-v1:secret#2"]


async def test_unknown_but_authentic_events_are_kept(topics: Any, ingress_factory: Any,
                                                     ingress_settings_factory: Any, consumer_factory: Any) -> None:
    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix))
    body = b'{"id":"evt_unknown","type":"some.future.event","object":"event"}'
    thin = b'{"id":"evt_thin","object":"v2.core.event","type":"v1.billing.meter.error_report_triggered"}'
    standard = b'{"type":"invoice.paid","timestamp":"2026-11-27T10:00:00Z","data":{"id":"inv_1"}}'
    async with httpx.AsyncClient() as client:
        for payload in (body, thin):
            response = await client.post(f"{server.url}/webhooks/stripe", content=payload, headers={
                "content-type": "application/json", "stripe-signature": sign_stripe(payload, STRIPE_SECRET,
                                                                                    int(time.time()))})
            assert response.status_code == 200
        now = int(time.time())
        response = await client.post(f"{server.url}/webhooks/standard/acme", content=standard, headers={
            "content-type": "application/json", "webhook-id": "msg_1", "webhook-timestamp": str(now),
            "webhook-signature": sign_standard(standard, STANDARD_SECRET, "msg_1", now)})
        assert response.status_code == 200
    records = await drain(await consumer_factory(topics.raw), expected=3)
    types = sorted(envelope_serde().decode(r.value).event_type for r in records)
    assert types == ["invoice.paid", "some.future.event", "v1.billing.meter.error_report_triggered"]
