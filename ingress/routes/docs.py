"""OpenAPI descriptions shared by the webhook routes (the handlers read raw bytes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from ingress.wire import Reply

__all__ = [
    "ERROR_RESPONSES",
    "PAYPAL_REQUEST",
    "RAW_JSON_BODY",
    "STANDARD_REQUEST",
    "STRIPE_REQUEST",
    "Accepted",
    "ErrorBody",
    "RouteNotFound",
    "as_response",
]


class Accepted(BaseModel):
    status: str
    envelope_id: str
    event_key: str


class ErrorBody(BaseModel):
    error: str
    message: str
    request_id: str
    reason: str | None = None


class RouteNotFound(BaseModel):
    """The router's own 404, for a path that only looks like a webhook route (e.g. a source with "/")."""

    detail: str


RAW_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The provider's JSON event, byte-exact as signed.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def _header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": True, "description": description,
            "schema": {"type": "string"}}


# The provider's event id: 1 to 255 printable characters (ASCII here; printable Unicode is accepted too).
_EVENT_ID = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"}


def _request(description: str, headers: list[dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    return {
        "parameters": headers,
        "requestBody": {"required": True, "description": description,
                        "content": {"application/json": {"schema": body}}},
    }


STRIPE_REQUEST: dict[str, Any] = _request(
    "A Stripe event, byte-exact as signed; its `id` is the event key.",
    [_header("stripe-signature", "`t=<unix seconds>,v1=<hex HMAC-SHA256>`; only v1 counts, any v1 may match")],
    {"type": "object", "required": ["id"], "properties": {"id": _EVENT_ID}},
)
PAYPAL_REQUEST: dict[str, Any] = _request(
    "A PayPal event, byte-exact as signed; its `id` is the event key.",
    [_header("paypal-transmission-id", "signed; no `|`"),
     _header("paypal-transmission-time", "RFC 3339 with a zone, within the configured tolerance"),
     _header("paypal-transmission-sig", "base64 RSA signature (SHA256withRSA)"),
     _header("paypal-cert-url", "https URL on an allow-listed PayPal host"),
     _header("paypal-auth-algo", "SHA256withRSA")],
    {"type": "object", "required": ["id"], "properties": {"id": _EVENT_ID}},
)
STANDARD_REQUEST: dict[str, Any] = _request(
    "A Standard Webhooks event, byte-exact as signed; the `webhook-id` header is the event key.",
    [_header("webhook-id", "the message id; no `.`"),
     _header("webhook-timestamp", "unix seconds, within ± the configured tolerance"),
     _header("webhook-signature", "space-separated `v1,<base64 HMAC-SHA256>` entries")],
    {"type": "object"},
)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "signature invalid (reason code), malformed JSON or headers"},
    404: {"model": ErrorBody | RouteNotFound,
          "description": "unknown source (or a source that contains `/`, answered by the router)"},
    408: {"model": ErrorBody, "description": "body not received in time"},
    413: {"model": ErrorBody, "description": "body larger than the limit (`body_too_large`: PAYSTREAM_MAX_BODY_BYTES, "
                                             "capped so the envelope fits the broker), or an event too large to "
                                             "store (`record_too_large`)"},
    415: {"model": ErrorBody, "description": "content type is not JSON"},
    503: {"model": ErrorBody, "description": "the broker did not acknowledge (`broker_unavailable`), refused this "
                                             "record (`record_refused`), or the schema registry is unavailable "
                                             "(`registry_unavailable`); retry after Retry-After seconds"},
}


def as_response(reply: Reply) -> Response:
    """A webhook `Reply` as a Starlette response (for the FastAPI-routed path)."""
    return Response(reply.body(), status_code=reply.status, media_type="application/json", headers=reply.headers)
