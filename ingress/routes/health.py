"""GET /health (alive), GET /ready (broker reachable, schema registered), GET /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response

from ingress.deps import ContextDep

router = APIRouter(tags=["operations"])


@router.get("/health", summary="The process is alive")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="The broker is reachable, the producer healthy and the envelope schema registered",
            responses={503: {"description": "not ready"}})
async def ready(ctx: ContextDep) -> Response:
    is_ready = await ctx.publisher.ready()
    ctx.metrics.broker_ready.set(1 if is_ready else 0)
    if not ctx.schemas.ready:
        return JSONResponse({"status": "not_ready",
                             "error": f"schema registry: {ctx.schemas.last_error or 'not registered'}"},
                            status_code=503)
    if is_ready:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not_ready", "error": ctx.publisher.last_error or "not connected"},
                        status_code=503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(ctx: ContextDep) -> Response:
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
