"""A direct ASGI path for webhook POSTs, outermost in the middleware stack.

The webhook routes are declared as FastAPI routes (OpenAPI, /docs, and they work
if reached), but every delivery would pay for Starlette's middleware layers,
FastAPI's dependency solving and router, and Response objects — more than the
verification itself. Webhooks are the hot path, so this layer recognises the
three webhook paths and calls the very same handlers directly; everything else
(health, metrics, docs) goes through FastAPI untouched. An unexpected error
becomes a logged 500, as Starlette's ServerErrorMiddleware would make it. A
request that uvicorn cancels when its graceful-shutdown timeout ends (seen with a
body that had not arrived) gets a retryable 503, not uvicorn's 500.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from ingress.context import IngressContext
from ingress.routes.paypal import handle_paypal
from ingress.routes.standard import handle_standard
from ingress.routes.stripe import handle_stripe
from ingress.wire import Reply, WebhookRequest

__all__ = ["WebhookFastPath"]

log = logging.getLogger("paystream.ingress")
_STANDARD_PREFIX = "/webhooks/standard/"


class WebhookFastPath:
    def __init__(self, app: ASGIApp, ctx: IngressContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        source = path[len(_STANDARD_PREFIX):] if path.startswith(_STANDARD_PREFIX) else ""
        if path not in ("/webhooks/stripe", "/webhooks/paypal") and (not source or "/" in source):
            await self.app(scope, receive, send)
            return
        try:
            request = WebhookRequest(scope, receive)
            if path == "/webhooks/stripe":
                reply = await handle_stripe(request, self.ctx)
            elif path == "/webhooks/paypal":
                reply = await handle_paypal(request, self.ctx)
            else:
                reply = await handle_standard(source, request, self.ctx)
        except asyncio.CancelledError:
            log.warning("webhook request cancelled by shutdown; answered 503", extra={"path": path})
            await Reply(503, {"error": "shutting_down", "message": "the ingress is stopping; retry"}).send(send)
            raise
        except Exception:
            log.exception("unexpected error handling a webhook", extra={"path": path})
            reply = Reply(500, {"error": "internal_error", "message": "unexpected error; retry later"})
        await reply.send(send)
