"""A schema registry that is down or hangs never stalls the ingress: 503 at once, `/health` answers, nothing
is published, and the envelope schema is registered as soon as the registry is back."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx

from ingress.signing import sign_stripe
from schemas.records import WebhookEnvelope
from schemas.registry import HttpSchemaRegistry
from schemas.serde import AvroSerde
from tests.fixtures.ingress import STRIPE_SECRET
from tests.fixtures.kafka import drain
from tests.fixtures.registry import RegistryServer


async def post(client: httpx.AsyncClient, url: str, event_id: str) -> httpx.Response:
    body = b'{"id":"%s","type":"charge.succeeded"}' % event_id.encode()
    return await client.post(f"{url}/webhooks/stripe", content=body, headers={
        "content-type": "application/json", "stripe-signature": sign_stripe(body, STRIPE_SECRET, int(time.time()))})


async def timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await request
    return response, time.perf_counter() - started


async def test_registry_hanging_then_back(
        topics: Any, ingress_factory: Any, ingress_settings_factory: Any, consumer_factory: Any,
        hanging_registry_factory: Callable[[], socket.socket],
        registry_factory: Callable[..., RegistryServer]) -> None:
    hanging = hanging_registry_factory()
    port = hanging.getsockname()[1]
    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix,
                                                      schema_registry_url=f"http://127.0.0.1:{port}"))
    async with httpx.AsyncClient(timeout=10) as client:
        # several webhooks at once, with /health beside them: none waits for the registry
        results = await asyncio.gather(*(timed(post(client, server.url, f"evt_down_{n}")) for n in range(5)),
                                       timed(client.get(f"{server.url}/health")))
        *webhooks, (health, health_s) = results
        for response, seconds in webhooks:
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "registry_unavailable"
            assert response.headers["retry-after"] == "5"
            assert seconds < 0.5, seconds
        assert health.status_code == 200 and health_s < 0.5, health_s
        ready = await client.get(f"{server.url}/ready")
        assert ready.status_code == 503 and "schema registry" in ready.json()["error"]

        # the registry comes back on the same address: the lifespan's retry registers, webhooks are stored
        hanging.close()
        registry = registry_factory(port=port)
        deadline = time.monotonic() + 20
        while (await client.get(f"{server.url}/ready")).status_code != 200:
            assert time.monotonic() < deadline, "never registered after the registry came back"
            await asyncio.sleep(0.2)
        assert (await post(client, server.url, "evt_back")).status_code == 200

    records = await drain(await consumer_factory(topics.raw), idle_s=1.0)
    assert len(records) == 1  # nothing of the 503'd requests
    assert records[0].value[0] == 0  # Confluent framing with the id registered in the background
    reader = AvroSerde(WebhookEnvelope, registry=HttpSchemaRegistry(registry.url))
    assert reader.decode(records[0].value).provider_event_id == "evt_back"
    assert registry.state["subjects"] == {f"{topics.raw}-value": int.from_bytes(records[0].value[1:5], "big")}


async def test_registry_refused_connection_is_503_not_500(
        topics: Any, ingress_factory: Any, ingress_settings_factory: Any, consumer_factory: Any,
        registry_factory: Callable[..., RegistryServer]) -> None:
    stopped = registry_factory()
    url = stopped.url
    stopped.stop()  # a real registry, started and stopped: its port now refuses connections
    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix, schema_registry_url=url))
    async with httpx.AsyncClient(timeout=10) as client:
        response, seconds = await timed(post(client, server.url, "evt_refused"))
        assert (response.status_code, response.json()["error"]) == (503, "registry_unavailable")
        assert seconds < 0.5
        assert (await client.get(f"{server.url}/health")).status_code == 200
    assert await drain(await consumer_factory(topics.raw), idle_s=1.0) == []
