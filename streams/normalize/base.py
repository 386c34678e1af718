"""Shared pieces of the normalizers: the error, JSON loading, typed field access, time parsing.

Provider payloads are untrusted JSON (verified, but shaped by someone else), so every
accessor checks types instead of trusting them: `normalize` must either return a
`PaymentEvent` or raise `NormalizeError`, which the worker turns into a dead letter.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.clock import EPOCH, from_epoch_s
from schemas.exceptions import PaystreamError
from schemas.lifecycle import Kind, Status
from schemas.records import MoneyPart, PaymentEvent, WebhookEnvelope

__all__ = [
    "MAX_ID_LENGTH",
    "Json",
    "NormalizeError",
    "build_event",
    "check_envelope",
    "int_at",
    "list_at",
    "load_json_object",
    "obj_at",
    "parse_time",
    "ref_id",
    "resolve_time",
    "str_at",
    "to_ms",
]

Json = dict[str, Any]

# 9999-12-31T23:59:59Z: the last second a `datetime` can hold.
_MAX_EPOCH_S = 253_402_300_799
_MAX_TIME_CHARS = 64
MAX_ID_LENGTH = 255
"""Longest provider id accepted (Stripe's and PayPal's are well under 64 characters)."""


class NormalizeError(PaystreamError):
    """A verified payload that cannot become a `PaymentEvent`; it goes to the dead-letter topic.

    `reason` is a short machine code (`invalid_json`, `missing_payment_id`, `unknown_currency`,
    …) for metrics and the `dlq.exception.message` header; the message adds the detail.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep `reason` through pickling (process pools, Faust's error paths).
        return (type(self), (self.reason, self.detail))


def load_json_object(body: bytes) -> Json:
    """Parse the raw body; only a JSON object can be a webhook event."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise NormalizeError("invalid_json", str(exc)) from None
    if not isinstance(doc, dict):
        raise NormalizeError("not_an_object", f"body is a JSON {type(doc).__name__}")
    return doc


def obj_at(doc: Json | None, key: str) -> Json | None:
    value = doc.get(key) if doc is not None else None
    return value if isinstance(value, dict) else None


def list_at(doc: Json | None, key: str) -> list[Any]:
    value = doc.get(key) if doc is not None else None
    return value if isinstance(value, list) else []


def str_at(doc: Json | None, key: str) -> str | None:
    """A non-empty string field, else None (absent, null, wrong type and "" all mean "not given")."""
    value = doc.get(key) if doc is not None else None
    return value if isinstance(value, str) and value else None


def int_at(doc: Json | None, key: str) -> int | None:
    """An integer field; JSON `true` is not a number here even though Python says it is."""
    value = doc.get(key) if doc is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def ref_id(value: object) -> str | None:
    """Id of a Stripe-style reference: either the id string or the expanded object."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        inner = value.get("id")
        return inner if isinstance(inner, str) and inner else None
    return None


def to_ms(value: datetime) -> datetime:
    """UTC, truncated to whole milliseconds (Avro `timestamp-millis`)."""
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def parse_time(value: object) -> datetime:
    """Unix seconds (Stripe `created`) or an RFC 3339 string with a zone (PayPal, Standard Webhooks)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= _MAX_EPOCH_S:
            raise NormalizeError("invalid_time", f"epoch seconds out of range: {value}")
        return from_epoch_s(value)
    if isinstance(value, str) and 0 < len(value) <= _MAX_TIME_CHARS:
        try:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                raise NormalizeError("invalid_time", f"time without a zone: {value!r}")
            result = to_ms(parsed)
        except (ValueError, OverflowError):
            raise NormalizeError("invalid_time", f"not an RFC 3339 time: {value!r}") from None
        if result < EPOCH:
            raise NormalizeError("invalid_time", f"before 1970: {value!r}")
        return result
    raise NormalizeError("invalid_time", f"not a time: {value!r:.80}")


def resolve_time(candidates: Iterable[object], envelope: WebhookEnvelope, *, strict: bool) -> datetime:
    """First present candidate, else the envelope's provider time, else its receive time.

    `strict`: a present but unparseable candidate is an error (mapped payment events need a
    trustworthy time for ordering); otherwise it is skipped (events of kind "other").
    """
    for candidate in candidates:
        if candidate is None:
            continue
        try:
            return parse_time(candidate)
        except NormalizeError:
            if strict:
                raise
    return to_ms(envelope.provider_created_at or envelope.received_at)


def check_envelope(envelope: WebhookEnvelope, doc: Json, *, type_key: str, id_key: str | None) -> str:
    """The event type to map; refuses a body whose own id or type contradicts the envelope.

    The ingress builds the envelope from this very body, so a contradiction means a corrupted
    or hand-edited record, and mapping it under either identity would be a guess.
    """
    body_type = str_at(doc, type_key)
    if body_type and envelope.event_type and body_type != envelope.event_type:
        raise NormalizeError("envelope_mismatch", f"body type {body_type!r} != envelope {envelope.event_type!r}")
    if id_key is not None:
        body_id = str_at(doc, id_key)
        if body_id and envelope.provider_event_id and body_id != envelope.provider_event_id:
            raise NormalizeError("envelope_mismatch", f"body id {body_id!r} != envelope {envelope.provider_event_id!r}")
    return envelope.event_type or body_type or ""


def build_event(
    envelope: WebhookEnvelope,
    *,
    event_type: str,
    payment_id: str,
    kind: Kind,
    occurred_at: datetime,
    status: Status | None = None,
    amount_minor: int | None = None,
    currency: str | None = None,
    provider_status: str | None = None,
    related_ids: dict[str, str] | None = None,
    refunded_total_minor: int | None = None,
    parts: list[MoneyPart] | None = None,
) -> PaymentEvent:
    """Assemble the record; envelope fields are copied, enums stored as their plain string values.

    `event_type` is the envelope's, or the body's when the envelope left it empty. Every id is
    bounded (`MAX_ID_LENGTH`): a longer one is no provider's and would not fit a database key.
    """
    related = related_ids or {}
    for name, value in (("payment_id", payment_id), *related.items(), *((p.kind, p.id) for p in parts or ())):
        if len(value) > MAX_ID_LENGTH:
            raise NormalizeError("id_too_long", f"{name} is {len(value)} characters (at most {MAX_ID_LENGTH})")
    return PaymentEvent(
        event_key=f"{envelope.provider}:{envelope.provider_event_id}",
        payment_id=payment_id,
        provider=envelope.provider,
        event_type=envelope.event_type or event_type,
        kind=kind.value,
        occurred_at=occurred_at,
        envelope_id=envelope.envelope_id,
        received_at=envelope.received_at,
        status=status.value if status is not None else None,
        amount_minor=amount_minor,
        currency=currency,
        provider_status=provider_status,
        related_ids=related,
        refunded_total_minor=refunded_total_minor,
        parts=parts or [],
        livemode=envelope.livemode,
        traceparent=envelope.traceparent,
    )
