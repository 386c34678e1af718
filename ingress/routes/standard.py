"""POST /webhooks/standard/{source}: any sender that follows Standard Webhooks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ingress.context import IngressContext
from ingress.deps import ContextDep
from ingress.handler import EventMeta, accept_webhook, error_reply, request_id_of, require_event_id
from ingress.routes.docs import ERROR_RESPONSES, STANDARD_REQUEST, Accepted, as_response
from ingress.routes.paypal import parse_time
from ingress.verify.base import Verified
from ingress.wire import Reply, WebhookRequest, random_ids

router = APIRouter(tags=["webhooks"])


async def handle_standard(source: str, request: WebhookRequest, ctx: IngressContext) -> Reply:
    verifier = ctx.standard.get(source)
    if verifier is None:
        ctx.metrics.of("standard").rejected.inc()
        return error_reply(404, "unknown_source", "no secret is configured for this source",
                           request_id_of(request, random_ids()[1]))

    async def verify(body: bytes) -> Verified:
        return verifier.verify(body, request.headers, ctx.clock())

    def extract(data: dict[str, Any], verified: Verified) -> EventMeta:
        message_id = require_event_id(request.headers.get("webhook-id"), "webhook-id")
        event_type = data.get("type")
        return EventMeta(
            # ids are only unique per sender, so the source is part of ours
            provider_event_id=f"{source}:{message_id}",
            event_type=event_type if isinstance(event_type, str) and event_type else "unknown",
            provider_created_at=parse_time(data.get("timestamp")),
        )

    return await accept_webhook(request, ctx, provider="standard", source=source, verify=verify, extract=extract)


@router.post("/webhooks/standard/{source}", response_model=Accepted, responses=ERROR_RESPONSES,
             openapi_extra=STANDARD_REQUEST, summary="Receive a Standard Webhooks event")
async def standard_webhook(source: str, request: Request, ctx: ContextDep) -> Response:
    return as_response(await handle_standard(source, WebhookRequest(request.scope, request.receive), ctx))
