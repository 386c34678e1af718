"""Bad input gets a clear 4xx and publishes nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ingress.signing import sign_stripe
from tests.fixtures.ingress import STRIPE_SECRET
from tests.fixtures.kafka import drain


def signed(body: bytes, **extra: str) -> dict[str, str]:
    return {"content-type": "application/json", "stripe-signature": sign_stripe(body, STRIPE_SECRET,
                                                                                int(time.time())), **extra}


async def chunks(total: int, size: int = 65536) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b" " * piece


CASES: list[tuple[str, Any, Any, int, str]] = [
    ("oversized", b"{" + b" " * 1_100_000 + b"}", None, 413, "body_too_large"),
    ("chunked_oversized", "chunked", None, 413, "body_too_large"),
    ("wrong_content_type", b'{"id":"evt_1"}', {"content-type": "text/plain"}, 415, "unsupported_media_type"),
    ("form_content_type", b"id=evt_1", {"content-type": "application/x-www-form-urlencoded"}, 415,
     "unsupported_media_type"),
    ("missing_content_type", b'{"id":"evt_1"}', {"content-type": ""}, 415, "unsupported_media_type"),
    ("empty_body", b"", None, 400, "empty_body"),
    ("malformed_signature_header", b'{"id":"evt_1"}', {"stripe-signature": "garbage"}, 400, "signature_invalid"),
    ("missing_signature_header", b'{"id":"evt_1"}', {"stripe-signature": ""}, 400, "signature_invalid"),
    ("invalid_json_valid_signature", b'{"id": "evt_1",', None, 400, "malformed_json"),
    ("json_array_valid_signature", b'[{"id": "evt_1"}]', None, 400, "malformed_json"),
    ("json_without_id", b'{"type": "charge.succeeded"}', None, 400, "missing_event_id"),
    ("json_with_numeric_id", b'{"id": 42}', None, 400, "missing_event_id"),
    # refused by the HTTP server itself, before our code runs (no JSON body then)
    ("bad_content_length", b'{"id":"evt_1"}', {"content-length": "abc"}, 400, ""),
]


@pytest.mark.parametrize(("name", "body", "headers", "status", "error"), CASES, ids=[c[0] for c in CASES])
async def test_rejected_and_nothing_published(name: str, body: Any, headers: Any, status: int, error: str,
                                              topics: Any, ingress_factory: Any, ingress_settings_factory: Any,
                                              consumer_factory: Any) -> None:
    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix))
    content = chunks(2_000_000) if body == "chunked" else body
    raw = b"" if body == "chunked" else body
    request_headers = signed(raw)
    if headers:
        request_headers.update(headers)
    request_headers = {k: v for k, v in request_headers.items() if v != "" or k == "stripe-signature"}
    async with httpx.AsyncClient(timeout=30) as client:
        if name == "bad_content_length":
            response = await _raw_request(server.url, raw, request_headers)
        else:
            response = await client.post(f"{server.url}/webhooks/stripe", content=content, headers=request_headers)
    assert response.status_code == status, response.text
    if error:
        assert response.json()["error"] == error
    assert STRIPE_SECRET not in response.text
    assert await drain(await consumer_factory(topics.raw), idle_s=0.5) == []


async def _raw_request(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """httpx refuses to send a non-numeric Content-Length, so write the request by hand."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(f"POST /webhooks/stripe HTTP/1.1\r\nhost: {host}\r\n{head}connection: close\r\n\r\n".encode() + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return httpx.Response(int(status_line.split()[1]), content=payload)


async def test_slow_body_is_cut_off_and_others_are_served(topics: Any, ingress_factory: Any,
                                                          ingress_settings_factory: Any) -> None:
    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix))
    server.app.state.ingress.body_timeout_s = 1.0

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" "
            await asyncio.sleep(0.2)

    async with httpx.AsyncClient(timeout=30) as client:
        slow = asyncio.create_task(client.post(f"{server.url}/webhooks/stripe", content=trickle(),
                                               headers={"content-type": "application/json",
                                                        "stripe-signature": "t=1,v1=00"}))
        await asyncio.sleep(0.3)
        fast = await client.get(f"{server.url}/health")
        assert fast.status_code == 200
        response = await slow
    assert response.status_code == 408
    assert response.json()["error"] == "body_timeout"
