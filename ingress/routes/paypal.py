"""POST /webhooks/paypal"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ingress.context import IngressContext
from ingress.deps import ContextDep
from ingress.handler import EventMeta, accept_webhook, require_event_id
from ingress.routes.docs import ERROR_RESPONSES, PAYPAL_REQUEST, Accepted, as_response
from ingress.verify.base import Verified
from ingress.wire import Reply, WebhookRequest

router = APIRouter(tags=["webhooks"])


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time from the provider's JSON, at millisecond precision; None if absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            return None
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # unreadable or out of range: the envelope simply has no time
        return None
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


async def handle_paypal(request: WebhookRequest, ctx: IngressContext) -> Reply:
    async def verify(body: bytes) -> Verified:
        return await ctx.paypal.verify(body, request.headers, ctx.clock())

    def extract(data: dict[str, Any], verified: Verified) -> EventMeta:
        event_type = data.get("event_type")
        return EventMeta(
            provider_event_id=require_event_id(data.get("id")),
            event_type=event_type if isinstance(event_type, str) and event_type else "unknown",
            provider_created_at=parse_time(data.get("create_time")),
            # PayPal has no livemode flag; the certificate host says sandbox or live
            livemode=".sandbox." not in request.headers.get("paypal-cert-url", ""),
        )

    return await accept_webhook(request, ctx, provider="paypal", source="paypal", verify=verify, extract=extract)


@router.post("/webhooks/paypal", response_model=Accepted, responses=ERROR_RESPONSES,
             openapi_extra=PAYPAL_REQUEST,
             summary="Receive a PayPal event")
async def paypal_webhook(request: Request, ctx: ContextDep) -> Response:
    return as_response(await handle_paypal(WebhookRequest(request.scope, request.receive), ctx))
