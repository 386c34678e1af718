"""`envelope_factory`: wrap payload bytes in a `WebhookEnvelope` the way the ingress would."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.records import WebhookEnvelope

RECEIVED_AT = datetime(2024, 8, 2, 19, 33, 35, 123000, tzinfo=UTC)

# Where the ingress reads the event id and type from, per provider.
_ID_AND_TYPE_KEYS = {"stripe": ("id", "type"), "paypal": ("id", "event_type"), "standard": (None, "type")}

EnvelopeFactory = Callable[..., WebhookEnvelope]


def _from_body(body: bytes, key: str | None) -> str | None:
    if key is None:
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    value = parsed.get(key) if isinstance(parsed, dict) else None
    return value if isinstance(value, str) else None


@pytest.fixture
def envelope_factory() -> EnvelopeFactory:
    """`make(provider, body, **overrides)`; `body` is bytes or a dict (serialized compactly).

    The event id and type come from the body, as the ingress takes them, unless given.
    """

    def make(
        provider: str,
        body: bytes | dict[str, Any],
        *,
        event_id: str | None = None,
        event_type: str | None = None,
        source: str = "default",
        livemode: bool | None = False,
        traceparent: str | None = None,
        received_at: datetime = RECEIVED_AT,
        provider_created_at: datetime | None = None,
    ) -> WebhookEnvelope:
        data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        id_key, type_key = _ID_AND_TYPE_KEYS.get(provider, (None, None))
        return WebhookEnvelope(
            envelope_id="0b9f6c7e-3d1a-4d8e-9a55-6f1f3c2b7a10",
            provider=provider,
            source=source,
            provider_event_id=event_id or _from_body(data, id_key) or "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            event_type=event_type if event_type is not None else (_from_body(data, type_key) or ""),
            received_at=received_at,
            verified_by="test:none",
            body=data,
            content_type="application/json",
            provider_created_at=provider_created_at,
            livemode=livemode,
            traceparent=traceparent,
        )

    return make
