"""The Confluent-compatible registry client, against a small registry speaking the same HTTP API,
and the ingress publishing Confluent-framed envelopes when a registry is configured."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ingress.signing import sign_stripe
from schemas import RegistryError
from schemas.records import WebhookEnvelope
from schemas.registry import HttpSchemaRegistry
from schemas.serde import AvroSerde, load_schema
from tests.fixtures.ingress import STRIPE_SECRET
from tests.fixtures.kafka import drain


@pytest.fixture
def registry_server() -> Iterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"schemas": {}, "subjects": {}, "requests": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/vnd.schemaregistry.v1+json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            state["requests"] += 1
            subject = self.path.split("/")[2]
            schema = json.loads(self.rfile.read(int(self.headers["content-length"])))["schema"]
            if "refuse" in subject:
                self._answer(422, {"error_code": 42201, "message": "invalid schema"})
                return
            ids = state["schemas"]
            schema_id = next((i for i, s in ids.items() if s == schema), len(ids) + 1)
            ids[schema_id] = schema
            state["subjects"].setdefault(subject, schema_id)
            self._answer(200, {"id": schema_id})

        def do_GET(self) -> None:
            state["requests"] += 1
            schema_id = int(self.path.rsplit("/", 1)[1])
            if schema_id not in state["schemas"]:
                self._answer(404, {"error_code": 40403, "message": "Schema not found"})
                return
            self._answer(200, {"schema": state["schemas"][schema_id]})

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


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
