"""OpenAPI descriptions shared by the webhook routes (the handlers read raw bytes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from ingress.wire import Reply

__all__ = ["ERROR_RESPONSES", "RAW_JSON_BODY", "Accepted", "ErrorBody", "as_response"]


class Accepted(BaseModel):
    status: str
    envelope_id: str
    event_key: str


class ErrorBody(BaseModel):
    error: str
    message: str
    request_id: str
    reason: str | None = None


RAW_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The provider's JSON event, byte-exact as signed.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "signature invalid (reason code), malformed JSON or headers"},
    404: {"model": ErrorBody, "description": "unknown source"},
    408: {"model": ErrorBody, "description": "body not received in time"},
    413: {"model": ErrorBody, "description": "body larger than PAYSTREAM_MAX_BODY_BYTES"},
    415: {"model": ErrorBody, "description": "content type is not JSON"},
    503: {"model": ErrorBody, "description": "the broker did not acknowledge; retry after Retry-After seconds"},
}


def as_response(reply: Reply) -> Response:
    """A webhook `Reply` as a Starlette response (for the FastAPI-routed path)."""
    return Response(reply.body(), status_code=reply.status, media_type="application/json", headers=reply.headers)
