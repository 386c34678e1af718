"""The Confluent-compatible registry client, against a small registry speaking the same HTTP API,
and the ingress publishing Confluent-framed envelopes when a registry is configured."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ingress.signing import sign_stripe
from schemas import RegistryError
from schemas.records import WebhookEnvelope
from schemas.registry import AsyncHttpSchemaRegistry, HttpSchemaRegistry
from schemas.serde import AvroSerde, load_schema
from tests.fixtures.ingress import STRIPE_SECRET
from tests.fixtures.kafka import drain
from tests.fixtures.registry import RegistryServer


@pytest.fixture
def registry_server(registry_factory: Callable[..., RegistryServer]) -> tuple[str, dict[str, Any]]:
    server = registry_factory()
    return server.url, server.state


def test_register_lookup_and_caches(registry_server: tuple[str, dict[str, Any]]) -> None:
    url, state = registry_server
    client = HttpSchemaRegistry(url)
    schema = load_schema("webhook_envelope")
    first = client.register("raw-value", schema)
    assert client.register("raw-value", schema) == first
    assert state["requests"] == 1  # the second registration came from the cache
    assert HttpSchemaRegistry(url).schema_by_id(first) == schema
    with pytest.raises(RegistryError, match="refused"):
        client.register("refuse-value", schema)
    with pytest.raises(RegistryError, match="not found"):
        HttpSchemaRegistry(url).schema_by_id(999)
    with pytest.raises(RegistryError, match="unreachable"):
        HttpSchemaRegistry("http://127.0.0.1:9", timeout_s=0.5).register("x-value", schema)


async def test_async_client_registers_looks_up_and_fails_cleanly(
        registry_server: tuple[str, dict[str, Any]]) -> None:
    url, state = registry_server
    client = AsyncHttpSchemaRegistry(url)
    schema = load_schema("webhook_envelope")
    try:
        first = await client.register("raw-value", schema)
        assert await client.register("raw-value", schema) == first
        assert state["requests"] == 1
        with pytest.raises(RegistryError, match="refused"):
            await client.register("refuse-value", schema)
    finally:
        await client.aclose()
    other = AsyncHttpSchemaRegistry(url)
    try:
        assert await other.schema_by_id(first) == schema
        with pytest.raises(RegistryError, match="not found"):
            await other.schema_by_id(999)
    finally:
        await other.aclose()
    closed = AsyncHttpSchemaRegistry("http://127.0.0.1:9", timeout_s=0.5)
    try:
        with pytest.raises(RegistryError, match="unreachable"):
            await closed.register("x-value", schema)
    finally:
        await closed.aclose()


async def test_ingress_publishes_confluent_framed_envelopes(
        registry_server: tuple[str, dict[str, Any]], topics: Any, ingress_factory: Any,
        ingress_settings_factory: Any, consumer_factory: Any) -> None:
    url, state = registry_server
    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix, schema_registry_url=url))
    body = b'{"id":"evt_registry","type":"charge.succeeded"}'
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{server.url}/webhooks/stripe", content=body, headers={
            "content-type": "application/json", "stripe-signature": sign_stripe(body, STRIPE_SECRET, int(time.time()))})
    assert response.status_code == 200, response.text
    [record] = await drain(await consumer_factory(topics.raw), expected=1)
    assert record.value[0] == 0  # Confluent magic byte, then the registry's schema id
    assert state["subjects"] == {f"{topics.raw}-value": int.from_bytes(record.value[1:5], "big")}
    reader = AvroSerde(WebhookEnvelope, registry=HttpSchemaRegistry(url))
    assert reader.decode(record.value).body == body
