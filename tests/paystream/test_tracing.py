"""Trace context from the provider request reaches the worker; spans export over OTLP when configured."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ingress.signing import sign_stripe
from paystream.core.tracing import setup_tracing
from paystream.dev.scenarios import stripe_payment_intent
from tests.fixtures.ingress import STRIPE_SECRET

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """A minimal OTLP/HTTP receiver: records (service, span name, trace id) of every exported span."""
    spans: list[tuple[str, str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource_spans in request.resource_spans:
                service = next((a.value.string_value for a in resource_spans.resource.attributes
                                if a.key == "service.name"), "")
                for scope in resource_spans.scope_spans:
                    spans.extend((service, span.name, span.trace_id.hex()) for span in scope.spans)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", spans
    server.shutdown()
    server.server_close()


def test_disabled_tracer_is_silent() -> None:
    assert not setup_tracing("", "x").enabled


async def test_one_trace_from_ingress_through_the_worker(
        collector: tuple[str, list[tuple[str, str, str]]], topics: Any, ingress_factory: Any,
        ingress_settings_factory: Any, worker_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, spans = collector
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    worker_factory(PAYSTREAM_OTLP_ENDPOINT=endpoint, OTEL_BSP_SCHEDULE_DELAY="200")
    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix, otlp_endpoint=endpoint))
    delivery = stripe_payment_intent("payment_intent.succeeded", "pi_traced", amount=500, currency="USD",
                                     created=int(time.time()), charge="ch_traced")
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{server.url}/webhooks/stripe", content=delivery.body, headers={
            "content-type": "application/json", "traceparent": INCOMING,
            "stripe-signature": sign_stripe(delivery.body, STRIPE_SECRET, int(time.time()))})
    assert response.status_code == 200
    wanted = {("paystream-ingress", "POST /webhooks/stripe"), ("paystream-worker", "dedup+normalize"),
              ("paystream-worker", "apply state")}
    for _ in range(100):
        if wanted <= {(service, name) for service, name, trace in spans if trace == TRACE_ID}:
            break
        await asyncio.sleep(0.2)
    assert wanted <= {(service, name) for service, name, trace in spans if trace == TRACE_ID}, spans
