"""The webhook fast path and the FastAPI routes run the same handlers with the same answers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ingress import create_app
from ingress.signing import sign_stripe
from paystream.core.settings import Settings
from tests.ingress.test_properties import RecordingPublisher

SECRET = "whsec_fastpath"


def app_and_publisher(tmp_path: Path) -> tuple[Any, RecordingPublisher]:
    publisher = RecordingPublisher()
    app = create_app(Settings(kafka_bootstrap="127.0.0.1:9", stripe_webhook_secrets=[SECRET], data_dir=tmp_path),
                     publisher=publisher)
    return app, publisher


@pytest.mark.parametrize("target", ["fast_path", "fastapi_router"])
async def test_both_paths_answer_alike(target: str, tmp_path: Path) -> None:
    app, publisher = app_and_publisher(tmp_path)
    # FastAPI's own stack, built without our outermost layer, reaches the declared routes
    inner = FastAPI.build_middleware_stack(app)

    async def without_fast_path(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = app
        await inner(scope, receive, send)

    asgi = app if target == "fast_path" else without_fast_path
    body = b'{"id":"evt_fp","type":"charge.succeeded"}'
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://t") as client:
        ok = await client.post("/webhooks/stripe", content=body, headers={
            "content-type": "application/json", "stripe-signature": sign_stripe(body, SECRET, int(time.time()))})
        bad = await client.post("/webhooks/stripe", content=body, headers={
            "content-type": "application/json", "stripe-signature": "t=1,v1=00"})
        unknown = await client.post("/webhooks/standard/nobody", content=b"{}",
                                    headers={"content-type": "application/json"})
    assert ok.status_code == 200 and ok.json()["event_key"] == "stripe:evt_fp"
    assert bad.status_code == 400 and bad.json()["reason"] == "signature_mismatch"
    assert unknown.status_code == 404
    assert len(publisher.records) == 1


def test_the_fast_path_can_be_switched_off_for_the_benchmarks_a_b(tmp_path: Path) -> None:
    from ingress.fastpath import WebhookFastPath

    on = create_app(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path), publisher=RecordingPublisher())
    off = create_app(Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path, ingress_fastpath=False),
                     publisher=RecordingPublisher())
    assert isinstance(on.build_middleware_stack(), WebhookFastPath)
    assert not isinstance(off.build_middleware_stack(), WebhookFastPath)


async def test_unexpected_errors_become_a_logged_500(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app, publisher = app_and_publisher(tmp_path)

    def explode(*args: Any) -> Any:
        raise RuntimeError("boom")

    app.state.ingress.stripe.verify = explode
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/webhooks/stripe", content=b"{}", headers={"content-type": "application/json"})
        health = await client.get("/health")
    assert response.status_code == 500 and response.json()["error"] == "internal_error"
    assert "boom" not in response.text
    assert health.status_code == 200
    assert any("unexpected error" in r.getMessage() for r in caplog.records)
    assert publisher.records == []


async def test_a_request_cancelled_by_shutdown_gets_a_retryable_503(tmp_path: Path) -> None:
    """uvicorn cancels requests still running when its graceful-shutdown timeout ends; a body that
    never arrived must not turn into uvicorn's 500 (providers and our fault suite treat 503 as retry)."""
    app, publisher = app_and_publisher(tmp_path)
    scope = {"type": "http", "method": "POST", "path": "/webhooks/stripe", "headers": [
        (b"content-type", b"application/json"), (b"stripe-signature", b"t=1,v1=00")], "query_string": b""}
    never = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await never.wait()  # the body never comes
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    task = asyncio.create_task(app(scope, receive, send))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 503
    assert b"shutting_down" in sent[1]["body"]
    assert not publisher.records
