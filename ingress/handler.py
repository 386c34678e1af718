"""The one acceptance path every provider route goes through.

content type → size-limited body → signature on the raw bytes → JSON → envelope
→ produce (acks=all) → 200. Every refusal is a clear 4xx/503 with a reason code,
and nothing is published unless the signature verified.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ingress.context import IngressContext
from ingress.exceptions import BadRequestError, PublishError, RecordRejectedError, VerificationError
from ingress.metrics import ProviderMetrics
from ingress.tracing import forward_traceparent, parse_traceparent
from ingress.verify.base import Verified
from ingress.wire import Reply, WebhookRequest, random_ids
from schemas.clock import now_ms
from schemas.records import WebhookEnvelope

__all__ = ["EventMeta", "accept_webhook", "error_reply", "parse_event_json", "require_event_id"]

log = logging.getLogger("paystream.ingress")

_KEPT_HEADERS = frozenset({
    "content-type", "content-length", "user-agent", "traceparent", "tracestate", "x-request-id",
    "stripe-signature",
    "paypal-transmission-id", "paypal-transmission-time", "paypal-transmission-sig", "paypal-cert-url",
    "paypal-auth-algo", "paypal-auth-version", "correlation-id",
    "webhook-id", "webhook-timestamp", "webhook-signature",
})
_MAX_ID_LENGTH = 255


@dataclass(frozen=True, slots=True)
class EventMeta:
    """What the envelope needs from the provider's JSON."""

    provider_event_id: str
    event_type: str
    provider_created_at: datetime | None = None
    livemode: bool | None = None


Verify = Callable[[bytes], Awaitable[Verified]]
Extract = Callable[[dict[str, Any], Verified], EventMeta]


def error_reply(status: int, error: str, message: str, request_id: str, *, reason: str | None = None,
                headers: dict[str, str] | None = None) -> Reply:
    payload: dict[str, object] = {"error": error, "message": message, "request_id": request_id}
    if reason is not None:
        payload["reason"] = reason
    return Reply(status, payload, {"x-request-id": request_id, **(headers or {})})


def request_id_of(request: WebhookRequest, fallback: str) -> str:
    supplied = request.headers.get("x-request-id")
    if supplied and len(supplied) <= 64 and supplied.isascii() and supplied.isprintable():
        return supplied
    return fallback


def parse_event_json(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(400, "malformed_json", "the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise BadRequestError(400, "malformed_json", "the body is not a JSON object")
    return data


def require_event_id(value: object, what: str = "id") -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_ID_LENGTH or not value.isprintable():
        raise BadRequestError(400, "missing_event_id", f"the event has no usable {what}")
    return value


def _record_rejected_reply(exc: RecordRejectedError, ctx: IngressContext, metrics: ProviderMetrics, request_id: str,
                           provider: str, source: str, envelope_id: str, meta: EventMeta) -> Reply:
    """413 for a record too large to store (a retry cannot help), else 503 with Retry-After."""
    status = 413 if exc.too_large else 503
    (metrics.rejected if exc.too_large else metrics.unavailable).inc()
    log.error("webhook not stored: the broker refused this record",
              extra={"request_id": request_id, "provider": provider, "source": source, "status": status,
                     "envelope_id": envelope_id, "provider_event_id": meta.provider_event_id, "error": str(exc)})
    if exc.too_large:
        return error_reply(413, "record_too_large", "the event is too large to store", request_id)
    return error_reply(503, "record_refused", "the broker refused the event; retry later", request_id,
                       headers={"retry-after": str(ctx.settings.retry_after_s)})


async def accept_webhook(
    request: WebhookRequest, ctx: IngressContext, *, provider: str, source: str, verify: Verify, extract: Extract
) -> Reply:
    envelope_id, request_hex, trace_hex = random_ids()
    incoming = request.headers.get("traceparent")
    if not ctx.tracer.enabled:
        return await _accept(request, ctx, provider, source, verify, extract, envelope_id, request_hex,
                             forward_traceparent(incoming, trace_hex))
    span = ctx.tracer.start_span(f"POST /webhooks/{provider}", incoming if parse_traceparent(incoming) else None,
                                 {"paystream.provider": provider, "paystream.source": source,
                                  "paystream.envelope_id": envelope_id})
    try:
        reply = await _accept(request, ctx, provider, source, verify, extract, envelope_id, request_hex,
                              ctx.tracer.traceparent_of(span))
        span.set_attribute("http.response.status_code", reply.status)
        return reply
    finally:
        span.end()


async def _accept(request: WebhookRequest, ctx: IngressContext, provider: str, source: str, verify: Verify,
                  extract: Extract, envelope_id: str, request_hex: str, traceparent: str) -> Reply:
    started = time.perf_counter()
    request_id = request_id_of(request, request_hex)
    metrics = ctx.metrics.of(provider)
    try:
        content_type = request.content_type()
        body = await request.body(ctx.settings.body_limit_bytes, ctx.body_timeout_s)
        if not body:
            raise BadRequestError(400, "empty_body", "the request body is empty")
        verified = await verify(body)
        meta = extract(parse_event_json(body), verified)
    except VerificationError as exc:
        metrics.verification_failure(exc.reason)
        metrics.rejected.inc()
        log.warning("webhook rejected", extra={"request_id": request_id, "provider": provider, "source": source,
                                               "status": 400, "reason": exc.reason})
        return error_reply(400, "signature_invalid", exc.message, request_id, reason=exc.reason)
    except BadRequestError as exc:
        metrics.rejected.inc()
        log.warning("webhook rejected", extra={"request_id": request_id, "provider": provider, "source": source,
                                               "status": exc.status_code, "reason": exc.error})
        return error_reply(exc.status_code, exc.error, exc.message, request_id)

    headers = request.headers
    envelope = WebhookEnvelope(
        envelope_id=envelope_id,
        provider=provider,
        source=source,
        provider_event_id=meta.provider_event_id,
        event_type=meta.event_type,
        received_at=now_ms(),
        provider_created_at=meta.provider_created_at,
        livemode=meta.livemode,
        verified_by=verified.verified_by,
        body=body,
        content_type=content_type,
        headers={k: v for k, v in headers.items() if k in _KEPT_HEADERS},
        traceparent=traceparent,
    )
    key = envelope.key
    if not ctx.schemas.ready:  # never wait for the registry here: the lifespan's background task retries it
        metrics.unavailable.inc()
        log.error("webhook not stored: the schema registry is unavailable; asking the sender to retry",
                  extra={"request_id": request_id, "provider": provider, "source": source, "status": 503,
                         "envelope_id": envelope_id, "provider_event_id": meta.provider_event_id,
                         "error": ctx.schemas.last_error})
        return error_reply(503, "registry_unavailable", "the schema registry is unavailable; retry later",
                           request_id, headers={"retry-after": str(ctx.settings.retry_after_s)})
    publish_started = time.perf_counter()
    try:
        partition, offset = await ctx.publisher.publish(
            ctx.topics.raw, key.encode(), ctx.serde.encode(envelope),
            [("traceparent", traceparent.encode()), ("envelope_id", envelope_id.encode())],
        )
    except RecordRejectedError as exc:  # this record only: the producer and other requests are unaffected
        return _record_rejected_reply(exc, ctx, metrics, request_id, provider, source, envelope_id, meta)
    except PublishError as exc:
        metrics.unavailable.inc()
        log.error("webhook not stored; asking the sender to retry",
                  extra={"request_id": request_id, "provider": provider, "source": source, "status": 503,
                         "envelope_id": envelope_id, "provider_event_id": meta.provider_event_id, "error": str(exc)})
        return error_reply(503, "broker_unavailable", "the event could not be stored; retry later", request_id,
                           headers={"retry-after": str(ctx.settings.retry_after_s)})
    now = time.perf_counter()
    metrics.accepted.inc()
    metrics.publish_seconds.observe(now - publish_started)
    metrics.request_seconds.observe(now - started)
    metrics.body_bytes.observe(len(body))
    if log.isEnabledFor(logging.INFO):
        log.info("webhook accepted", extra={
            "request_id": request_id, "provider": provider, "source": source, "status": 200,
            "envelope_id": envelope_id, "provider_event_id": meta.provider_event_id, "event_type": meta.event_type,
            "partition": partition, "offset": offset, "verified_by": envelope.verified_by,
            "duration_ms": round((now - started) * 1000, 2)})
    return Reply(200, {"status": "accepted", "envelope_id": envelope_id, "event_key": key},
                 {"x-request-id": request_id})
