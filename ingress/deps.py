"""Request dependencies as `Annotated` aliases, so route signatures read as types."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from ingress.context import IngressContext

__all__ = ["ContextDep", "get_context"]


async def get_context(request: Request) -> IngressContext:
    ctx: IngressContext = request.app.state.ingress
    return ctx


ContextDep = Annotated[IngressContext, Depends(get_context)]
