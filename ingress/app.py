"""The ingress application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from ingress.context import IngressContext, build_context
from ingress.fastpath import WebhookFastPath
from ingress.routes import health, paypal, standard, stripe
from paystream.core.settings import Settings

__all__ = ["IngressApp", "create_app"]


class IngressApp(FastAPI):
    """FastAPI with the webhook fast path outside its middleware stack (see `fastpath.py`)."""

    def __init__(self, ctx: IngressContext, **kwargs: Any) -> None:
        self._ingress_ctx = ctx
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return WebhookFastPath(stack, self._ingress_ctx) if self._ingress_ctx.settings.ingress_fastpath else stack


def create_app(settings: Settings, **context_overrides: Any) -> FastAPI:
    """A FastAPI app that verifies webhooks and publishes envelopes.

    Nothing connects until the lifespan starts; `context_overrides` (publisher,
    clock, paypal_certs, metrics) exist for tests and embedding.
    """
    ctx: IngressContext = build_context(settings, **context_overrides)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ctx.publisher.start()
        await ctx.schemas.start()  # before serving; a registry that is down means 503s, not a stalled loop
        try:
            yield
        finally:
            await ctx.schemas.stop()
            await ctx.publisher.stop()
            ctx.tracer.shutdown()

    app = IngressApp(
        ctx,
        title="paystream ingress",
        version="0.1.0",
        summary="Verifies Stripe, PayPal and Standard Webhooks deliveries on their raw bytes and stores them on Kafka.",
        lifespan=lifespan,
    )
    app.state.ingress = ctx
    for module in (stripe, paypal, standard, health):
        app.include_router(module.router)
    return app
