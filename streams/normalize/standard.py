"""Standard Webhooks event → `PaymentEvent`.

Standard Webhooks fixes the signature, not the payload; its convention is
`{"type": ..., "timestamp": ISO 8601, "data": {...}}`. Without a mapping such an event is
kind "other" keyed by `data.id` (or the webhook id). A `StandardMappings` says, per source
endpoint and event type, which kind/status it is and where the payment id, amount and
currency live, so a sender that is not Stripe or PayPal can still feed the lifecycle.

Paths are dotted and start at the body root ("data.object.id"); an all-digit segment
indexes a list ("data.items.0.id").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.lifecycle import Kind, Status
from schemas.records import PaymentEvent, WebhookEnvelope
from streams.normalize.base import (
    Json,
    NormalizeError,
    build_event,
    check_envelope,
    obj_at,
    resolve_time,
    str_at,
)
from streams.normalize.money import check_minor, currency_code, decimal_to_minor

__all__ = ["ANY_SOURCE", "StandardMappings", "StandardRule", "normalize_standard", "value_at"]

ANY_SOURCE = "*"
"""A rule under this source name applies to every source that has no rule of its own."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StandardRule:
    """How one event type of one sender maps onto the lifecycle.

    `amount_is_decimal`: the amount is a decimal string in major units ("12.50") to convert
    with the currency's exponent, instead of an integer already in minor units.
    """

    kind: Kind
    status: Status | None = None
    payment_id_path: str = "data.id"
    amount_path: str | None = None
    currency_path: str | None = None
    amount_is_decimal: bool = False
    provider_status_path: str | None = None

    def __post_init__(self) -> None:
        # Coerce plain strings from configuration; a bad value fails at start-up, not per event.
        object.__setattr__(self, "kind", Kind(self.kind))
        if self.status is not None:
            object.__setattr__(self, "status", Status(self.status))
        if (self.amount_path is None) != (self.currency_path is None):
            raise ValueError("amount_path and currency_path go together")


@dataclass(frozen=True, slots=True)
class StandardMappings:
    """Rules keyed by (source, event type); `ANY_SOURCE` as source is the fallback."""

    rules: Mapping[tuple[str, str], StandardRule] = field(default_factory=dict)

    def lookup(self, source: str, event_type: str) -> StandardRule | None:
        return self.rules.get((source, event_type)) or self.rules.get((ANY_SOURCE, event_type))


def value_at(doc: Json, path: str) -> object:
    """The JSON value at a dotted path, or None when any step is missing or of the wrong type."""
    current: object = doc
    for step in path.split("."):
        if isinstance(current, dict):
            current = current.get(step)
        elif isinstance(current, list) and step.isascii() and step.isdigit():
            index = int(step)
            current = current[index] if index < len(current) else None
        else:
            return None
    return current


def _mapped(env: WebhookEnvelope, etype: str, doc: Json, rule: StandardRule) -> PaymentEvent:
    payment_id = value_at(doc, rule.payment_id_path)
    if not isinstance(payment_id, str) or not payment_id:
        raise NormalizeError("missing_payment_id", rule.payment_id_path)
    amount: int | None = None
    currency: str | None = None
    if rule.amount_path is not None and rule.currency_path is not None:
        raw_amount, raw_currency = value_at(doc, rule.amount_path), value_at(doc, rule.currency_path)
        if raw_amount is None:
            raise NormalizeError("missing_amount", rule.amount_path)
        if raw_currency is None:
            raise NormalizeError("missing_currency", rule.currency_path)
        currency = currency_code(raw_currency)
        amount = decimal_to_minor(raw_amount, currency) if rule.amount_is_decimal else check_minor(raw_amount)
    provider_status = value_at(doc, rule.provider_status_path) if rule.provider_status_path else None
    return build_event(
        env,
        event_type=etype,
        payment_id=payment_id,
        kind=rule.kind,
        occurred_at=resolve_time([doc.get("timestamp")], env, strict=True),
        status=rule.status,
        amount_minor=amount,
        currency=currency,
        provider_status=provider_status if isinstance(provider_status, str) else None,
    )


def normalize_standard(env: WebhookEnvelope, doc: Json, mappings: StandardMappings | None = None) -> PaymentEvent:
    """Map a Standard Webhooks payload: by rule when one matches, else as kind "other"."""
    # The webhook id lives in a header, not the body, so only the type is cross-checked.
    etype = check_envelope(env, doc, type_key="type", id_key=None)
    rule = mappings.lookup(env.source, etype) if mappings is not None else None
    if rule is not None:
        return _mapped(env, etype, doc, rule)
    return build_event(
        env,
        event_type=etype,
        payment_id=str_at(obj_at(doc, "data"), "id") or env.provider_event_id,
        kind=Kind.OTHER,
        occurred_at=resolve_time([doc.get("timestamp")], env, strict=False),
    )
