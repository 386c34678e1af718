"""POST /webhooks/stripe"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ingress.context import IngressContext
from ingress.deps import ContextDep
from ingress.handler import EventMeta, accept_webhook, require_event_id
from ingress.routes.docs import ERROR_RESPONSES, STRIPE_REQUEST, Accepted, as_response
from ingress.verify.base import Verified
from ingress.wire import Reply, WebhookRequest
from schemas.clock import from_epoch_s

router = APIRouter(tags=["webhooks"])


def stripe_meta(data: dict[str, Any], verified: Verified) -> EventMeta:
    created = data.get("created")
    livemode = data.get("livemode")
    event_type = data.get("type")
    return EventMeta(
        provider_event_id=require_event_id(data.get("id")),
        event_type=event_type if isinstance(event_type, str) and event_type else "unknown",
        provider_created_at=from_epoch_s(created) if isinstance(created, int) and 0 < created < 2**34 else None,
        livemode=livemode if isinstance(livemode, bool) else None,
    )


async def handle_stripe(request: WebhookRequest, ctx: IngressContext) -> Reply:
    async def verify(body: bytes) -> Verified:
        return ctx.stripe.verify(body, request.headers.get("stripe-signature"), ctx.clock())

    return await accept_webhook(request, ctx, provider="stripe", source="stripe", verify=verify, extract=stripe_meta)


@router.post("/webhooks/stripe", response_model=Accepted, responses=ERROR_RESPONSES,
             openapi_extra=STRIPE_REQUEST,
             summary="Receive a Stripe event")
async def stripe_webhook(request: Request, ctx: ContextDep) -> Response:
    return as_response(await handle_stripe(WebhookRequest(request.scope, request.receive), ctx))
