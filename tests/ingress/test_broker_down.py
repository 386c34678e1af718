"""No 2xx for anything the broker did not acknowledge; service resumes when it returns."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from ingress.signing import sign_stripe
from schemas.serde import envelope_serde
from schemas.topics import TopicCatalog, ensure_topics
from tests.fixtures.ingress import STRIPE_SECRET
from tests.fixtures.kafka import drain


async def post(client: httpx.AsyncClient, url: str, event_id: str) -> httpx.Response:
    body = b'{"id":"%s","type":"charge.succeeded"}' % event_id.encode()
    return await client.post(f"{url}/webhooks/stripe", content=body, headers={
        "content-type": "application/json", "stripe-signature": sign_stripe(body, STRIPE_SECRET, int(time.time()))})


async def keys_on(bootstrap: str, topic: str, consumer_factory: Any, expected: int | None) -> list[str]:
    from aiokafka import TopicPartition

    from paystream.core.broker import CompatConsumer

    consumer = CompatConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in await consumer._client._wait_on_metadata(topic)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        return [envelope_serde().decode(r.value).provider_event_id
                for r in await drain(consumer, expected=expected, idle_s=0.5)]
    finally:
        await consumer.stop()


async def test_broker_stopped_gives_503_then_recovers(broker_factory: Any, ingress_factory: Any,
                                                      ingress_settings_factory: Any, consumer_factory: Any) -> None:
    broker = broker_factory().start()
    catalog = TopicCatalog(partitions=2)
    await ensure_topics(broker.bootstrap, catalog)
    server = ingress_factory(ingress_settings_factory(kafka_bootstrap=broker.bootstrap, embedded_broker=True,
                                                      publish_timeout_s=1.0))
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await post(client, server.url, "evt_before")).status_code == 200
        assert (await client.get(f"{server.url}/ready")).status_code == 200
        port = broker.port
        broker.stop()
        responses = [await post(client, server.url, f"evt_down_{n}") for n in range(3)]
        assert [r.status_code for r in responses] == [503, 503, 503]
        assert all(r.headers["retry-after"] == "5" for r in responses)
        assert all(r.json()["error"] == "broker_unavailable" for r in responses)
        ready = await client.get(f"{server.url}/ready")
        assert ready.status_code == 503
        # a new (empty, memory-only) broker incarnation on the same port
        broker = broker_factory(port=port).start()
        await ensure_topics(broker.bootstrap, catalog)
        deadline = time.monotonic() + 30
        while True:
            response = await post(client, server.url, "evt_down_0")  # the provider's retry
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert response.status_code == 200
    assert await keys_on(broker.bootstrap, catalog.raw, consumer_factory, expected=1) == ["evt_down_0"]


async def test_paused_broker_never_yields_a_2xx_for_unstored_events(broker_factory: Any, ingress_factory: Any,
                                                                    ingress_settings_factory: Any,
                                                                    consumer_factory: Any) -> None:
    broker = broker_factory().start()
    catalog = TopicCatalog(partitions=2)
    await ensure_topics(broker.bootstrap, catalog)
    server = ingress_factory(ingress_settings_factory(kafka_bootstrap=broker.bootstrap, embedded_broker=True,
                                                      publish_timeout_s=1.0))
    accepted: list[str] = []
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await post(client, server.url, "evt_0")).status_code == 200
        accepted.append("evt_0")
        broker.pause()
        try:
            frozen = await asyncio.gather(*(post(client, server.url, f"evt_p{n}") for n in range(5)))
        finally:
            broker.resume()
        assert {r.status_code for r in frozen} == {503}
        for n in range(5):  # providers retry
            deadline = time.monotonic() + 20
            while (await post(client, server.url, f"evt_p{n}")).status_code != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.3)
            accepted.append(f"evt_p{n}")
    stored = await keys_on(broker.bootstrap, catalog.raw, consumer_factory, expected=None)
    # every 2xx is stored; a 503'd attempt that was already in flight may be stored too (dedup drops it later)
    assert set(accepted) <= set(stored)


async def test_starts_without_broker_and_becomes_ready(broker_factory: Any, ingress_factory: Any,
                                                       ingress_settings_factory: Any) -> None:
    from paystream.core.broker import free_port

    port = free_port()
    server = ingress_factory(ingress_settings_factory(kafka_bootstrap=f"127.0.0.1:{port}", embedded_broker=True,
                                                      publish_timeout_s=1.0))
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(f"{server.url}/health")).status_code == 200
        assert (await client.get(f"{server.url}/ready")).status_code == 503
        assert (await post(client, server.url, "evt_x")).status_code == 503
        broker = broker_factory(port=port).start()
        await ensure_topics(broker.bootstrap, TopicCatalog(partitions=2))
        deadline = time.monotonic() + 20
        while (await client.get(f"{server.url}/ready")).status_code != 200:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.3)
        assert (await post(client, server.url, "evt_x")).status_code == 200
