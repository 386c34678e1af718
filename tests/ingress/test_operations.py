"""/health, /ready, /metrics, /docs and the logs."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import pytest

from ingress.signing import sign_stripe
from tests.fixtures.ingress import STANDARD_SECRET, STRIPE_SECRET


async def test_health_ready_metrics_docs(topics: Any, ingress_factory: Any, ingress_settings_factory: Any) -> None:
    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix))
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{server.url}/health")).json() == {"status": "ok"}
        assert (await client.get(f"{server.url}/ready")).json() == {"status": "ready"}
        body = b'{"id":"evt_m","type":"charge.succeeded"}'
        await client.post(f"{server.url}/webhooks/stripe", content=body, headers={
            "content-type": "application/json", "stripe-signature": sign_stripe(body, STRIPE_SECRET, int(time.time()))})
        await client.post(f"{server.url}/webhooks/stripe", content=body, headers={
            "content-type": "application/json", "stripe-signature": "t=1,v1=ff"})
        metrics = (await client.get(f"{server.url}/metrics")).text
        assert 'paystream_ingress_requests_total{outcome="accepted",provider="stripe"} 1.0' in metrics
        assert 'paystream_ingress_verification_failures_total{provider="stripe",reason="signature_mismatch"} 1.0' \
            in metrics
        assert "paystream_ingress_publish_seconds_bucket" in metrics
        assert "process_resident_memory_bytes" in metrics
        assert (await client.get(f"{server.url}/docs")).status_code == 200
        spec = (await client.get(f"{server.url}/openapi.json")).json()
        assert {"/webhooks/stripe", "/webhooks/paypal", "/webhooks/standard/{source}", "/health", "/ready",
                "/metrics"} <= set(spec["paths"])


async def test_logs_carry_ids_but_no_secrets_or_bodies(topics: Any, ingress_factory: Any,
                                                       ingress_settings_factory: Any,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    from paystream.core.observability import JsonFormatter

    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix))
    body = b'{"id":"evt_log","type":"charge.succeeded","data":{"object":{"card":"4242424242424242"}}}'
    signature = sign_stripe(body, STRIPE_SECRET, int(time.time()))
    with caplog.at_level(logging.INFO, logger="paystream"):
        async with httpx.AsyncClient() as client:
            ok = await client.post(f"{server.url}/webhooks/stripe", content=body, headers={
                "content-type": "application/json", "stripe-signature": signature})
            bad = await client.post(f"{server.url}/webhooks/stripe", content=body, headers={
                "content-type": "application/json", "stripe-signature": signature.replace("v1=", "v1=0")})
    assert ok.status_code == 200 and bad.status_code == 400
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name.startswith("paystream")]
    text = "\n".join(lines)
    assert "evt_log" in text and ok.json()["envelope_id"] in text
    for secret in (STRIPE_SECRET, STANDARD_SECRET, signature.split("v1=")[1], "4242424242424242"):
        assert secret not in text
