"""Stripe event → `PaymentEvent` (mapping of providers.md 1.7-1.10).

The payment is the PaymentIntent when there is one, else the Charge (legacy charges have no
PaymentIntent), so every event about one purchase lands on one Kafka key. Both API shapes
parse: before 2022-11-15 a PaymentIntent lists `charges.data[]` and a Charge embeds
`refunds.data[]`; after it a PaymentIntent names `latest_charge` and refunds come only as
refund events.

Identity: an event that states its PaymentIntent, or is about a Charge (whose `payment_intent`
says for sure whether it has one), is keyed by its canonical payment. A refund or dispute
naming only its charge (`payment_intent: null`) cannot know: it is keyed by
the charge and the worker resolves it through the charge → PaymentIntent link (`streams/identity.py`).

Money travels as parts (`MoneyPart`), folded by `streams/fold.py`:
- a capture part (one per payment: a PaymentIntent has at most one succeeded charge) from
  succeeded/pending/failed charges and `payment_intent.succeeded` (`amount_received`);
- an authorization part from uncaptured charges and `amount_capturable_updated`, closed by a
  capture (Stripe captures once and releases the rest) and voided by `payment_intent.canceled`,
  `charge.expired` and the release of an uncaptured charge;
- a refund part per refund object, and per entry of an old-shape `charge.refunded`'s
  `refunds.data[]`; that event's cumulative `amount_refunded` is `refunded_total_minor`, a
  total, never one refund's amount;
- a dispute part per dispute: open while `needs_response`/`under_review`, an inquiry (no money
  moved) while `warning_needs_response`/`warning_under_review`, won for `won`, `warning_closed`,
  `prevented` and `funds_reinstated`, lost for `lost`.

Money Stripe releases without capturing it is not a refund, though Stripe books it as one: a
released uncaptured charge says `refunded: true` and counts its whole amount in `amount_refunded`
(its `charge.refunded` is a void), and a partial capture counts the uncaptured rest there and, in
the old shape, lists a refund for it (the charge's oldest). So a charge's total is
`amount_refunded` less what was released, and that listed refund is left out.

Other decisions: `occurred_at` is the event's `created` (when the change happened), not the
object's; `status` on refund and dispute events is informational (the fold derives the
payment's); thin events (`object: "v2.core.event"`) and unmapped types become kind "other".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from schemas.lifecycle import Kind, Status
from schemas.records import MoneyPart, PaymentEvent, WebhookEnvelope
from streams.normalize.base import (
    Json,
    NormalizeError,
    build_event,
    check_envelope,
    int_at,
    list_at,
    obj_at,
    ref_id,
    resolve_time,
    str_at,
)
from streams.normalize.money import check_minor, currency_code

__all__ = ["MAPPED_TYPES", "normalize_stripe"]

_PAYMENT_INTENT_STATUS: dict[str, Status] = {
    "payment_intent.created": Status.CREATED,
    "payment_intent.processing": Status.PROCESSING,
    "payment_intent.requires_action": Status.REQUIRES_ACTION,
    "payment_intent.amount_capturable_updated": Status.AUTHORIZED,
    # Funds applied to a customer_balance PaymentIntent, more still owed by the customer.
    "payment_intent.partially_funded": Status.REQUIRES_ACTION,
    "payment_intent.succeeded": Status.SUCCEEDED,
    "payment_intent.payment_failed": Status.FAILED,
    "payment_intent.canceled": Status.CANCELED,
}
# None: derive from the charge's own status/captured flags.
_CHARGE_STATUS: dict[str, Status | None] = {
    "charge.succeeded": None,
    "charge.updated": None,
    "charge.failed": Status.FAILED,
    "charge.captured": Status.SUCCEEDED,
    "charge.pending": Status.PROCESSING,
    "charge.expired": Status.CANCELED,
}
_REFUND_TYPES = frozenset({"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"})
_DISPUTE_STATUS: dict[str, Status | None] = {
    "charge.dispute.created": Status.DISPUTED,
    "charge.dispute.updated": Status.DISPUTED,
    "charge.dispute.funds_withdrawn": Status.DISPUTED,
    "charge.dispute.funds_reinstated": Status.DISPUTE_WON,
    "charge.dispute.closed": None,  # from the dispute's final status
}
_CLOSED_DISPUTE: dict[str, Status] = {
    "won": Status.DISPUTE_WON,
    "warning_closed": Status.DISPUTE_WON,
    "prevented": Status.DISPUTE_WON,
    "lost": Status.DISPUTE_LOST,
}
_REFUND_NOT_COUNTED = frozenset({"failed", "canceled"})
_REFUND_PART_STATUS = {"pending": "pending", "requires_action": "pending", "succeeded": "succeeded",
                       "failed": "failed", "canceled": "canceled"}
_DISPUTE_PART_STATUS = {"won": "won", "warning_closed": "won", "prevented": "won", "lost": "lost",
                        "warning_needs_response": "inquiry", "warning_under_review": "inquiry"}
_RELEASE_REASON = "expired_uncaptured_charge"
"""A refund Stripe makes itself to release an uncaptured charge: a void, not money returned."""
_CAPTURE = "capture"


def _amount(obj: Json, key: str) -> int:
    if obj.get(key) is None:
        raise NormalizeError("missing_amount", f"data.object.{key}")
    return check_minor(obj.get(key))


def _currency(obj: Json) -> str:
    if obj.get("currency") is None:
        raise NormalizeError("missing_currency", "data.object.currency")
    return currency_code(obj.get("currency"))


def _expect_object(obj: Json, expected: str) -> None:
    found = obj.get("object")
    if found is not None and found != expected:
        raise NormalizeError("unexpected_object", f"expected a {expected}, got {found!r:.40}")


def _related(**ids: str | None) -> dict[str, str]:
    return {key: value for key, value in ids.items() if value}


def _capture(amount: int, status: str) -> MoneyPart:
    return MoneyPart(_CAPTURE, "", amount, status)


def _authorization(amount: int, status: str) -> MoneyPart:
    return MoneyPart("authorization", "", amount, status)


def _refund_part(refund: Json, event_type: str = "") -> MoneyPart | None:
    refund_id = str_at(refund, "id")
    if refund_id is None or refund.get("amount") is None:
        return None
    own = str_at(refund, "status") or "succeeded"
    status = "failed" if event_type == "refund.failed" else _REFUND_PART_STATUS.get(own, "pending")
    return MoneyPart("refund", refund_id, check_minor(refund.get("amount")), status)


def _payment_intent(env: WebhookEnvelope, etype: str, obj: Json, occurred: datetime) -> PaymentEvent:
    _expect_object(obj, "payment_intent")
    pi = str_at(obj, "id")
    if pi is None:
        raise NormalizeError("missing_payment_id", "data.object.id")
    if etype == "payment_intent.succeeded":
        amount = _amount(obj, "amount_received" if obj.get("amount_received") is not None else "amount")
    elif etype == "payment_intent.amount_capturable_updated":
        amount = _amount(obj, "amount_capturable")
    else:
        amount = _amount(obj, "amount")
    charges = list_at(obj_at(obj, "charges"), "data")
    charge = ref_id(obj.get("latest_charge")) or (ref_id(charges[0]) if charges else None)
    kind = Kind.AUTHORIZATION if etype == "payment_intent.amount_capturable_updated" else Kind.PAYMENT
    parts = {
        "payment_intent.succeeded": [_capture(amount, "succeeded"), _authorization(amount, "captured")],
        "payment_intent.amount_capturable_updated": [_authorization(amount, "open")],
        "payment_intent.canceled": [_authorization(amount, "voided")],
    }.get(etype, [])
    return build_event(
        env,
        event_type=etype,
        payment_id=pi,
        kind=kind,
        occurred_at=occurred,
        status=_PAYMENT_INTENT_STATUS[etype],
        amount_minor=amount,
        currency=_currency(obj),
        provider_status=str_at(obj, "status"),
        related_ids=_related(payment_intent=pi, charge=charge),
        parts=parts,
    )


def _charge_ids(obj: Json) -> tuple[str, str | None]:
    charge = str_at(obj, "id")
    if charge is None:
        raise NormalizeError("missing_payment_id", "data.object.id")
    return charge, ref_id(obj.get("payment_intent"))


def _released(obj: Json) -> int:
    """What Stripe released of this charge without capturing it (and counts in `amount_refunded`)."""
    refunded = int_at(obj, "amount_refunded") or 0
    if obj.get("captured") is False:
        return refunded  # nothing captured: whatever went back was the hold
    amount, captured = int_at(obj, "amount"), int_at(obj, "amount_captured")
    if amount is None or captured is None or obj.get("status") != "succeeded":
        return 0
    # a partial capture releases the whole rest at once, so a total below it is refunds of what was captured
    # (multicapture releases nothing before the last capture: a total below the rest is read right there,
    # one at or above it is still taken as the release)
    rest = max(0, amount - captured)
    return rest if refunded >= rest else 0


def _is_released_hold(obj: Json) -> bool:
    return obj.get("captured") is False and (obj.get("refunded") is True or _released(obj) > 0)


def _derived_charge_status(obj: Json) -> Status | None:
    status = obj.get("status")
    if status == "succeeded":
        if obj.get("captured") is not False:
            return Status.SUCCEEDED
        return Status.CANCELED if _is_released_hold(obj) else Status.AUTHORIZED
    return {"pending": Status.PROCESSING, "failed": Status.FAILED}.get(status) if isinstance(status, str) else None


def _charge(env: WebhookEnvelope, etype: str, obj: Json, occurred: datetime) -> PaymentEvent:
    _expect_object(obj, "charge")
    charge, pi = _charge_ids(obj)
    status = _CHARGE_STATUS.get(etype) or _derived_charge_status(obj)
    amount = _amount(obj, "amount")
    captured = int_at(obj, "amount_captured")
    if status is Status.SUCCEEDED and captured:
        amount = check_minor(captured)
    return build_event(
        env,
        event_type=etype,
        payment_id=pi or charge,
        kind=Kind.PAYMENT,
        occurred_at=occurred,
        status=status,
        amount_minor=amount,
        currency=_currency(obj),
        provider_status=str_at(obj, "status"),
        related_ids=_related(payment_intent=pi, charge=charge),
        parts=_charge_parts(status, amount),
    )


def _charge_parts(status: Status | None, amount: int) -> list[MoneyPart]:
    """What a charge snapshot says of the capture: held (authorized), taken, pending, failed or expired."""
    return {
        Status.SUCCEEDED: [_capture(amount, "succeeded"), _authorization(amount, "captured")],
        Status.AUTHORIZED: [_authorization(amount, "open")],
        Status.PROCESSING: [_capture(amount, "pending")],
        Status.FAILED: [_capture(amount, "failed")],
        Status.CANCELED: [_authorization(amount, "voided")],
    }.get(status, []) if status is not None else []


def _charge_refunded(env: WebhookEnvelope, etype: str, obj: Json, occurred: datetime) -> PaymentEvent:
    _expect_object(obj, "charge")
    if _is_released_hold(obj):
        return _charge(env, etype, obj, occurred)  # an uncaptured charge released: a void, not a refund
    charge, pi = _charge_ids(obj)
    gross = _amount(obj, "amount_refunded")
    released = _released(obj)
    refunded = gross - released
    captured = int_at(obj, "amount_captured")
    base = check_minor(captured) if captured else _amount(obj, "amount")
    full = obj.get("refunded") is True or refunded >= base  # `refunded`: amount_refunded == amount
    # each embedded refund (before 2022-11-15; up to 10, newest first) is a part with its own status
    listed = [r for r in list_at(obj_at(obj, "refunds"), "data") if isinstance(r, dict)]
    parts = [part for r in _without_release(listed, released, gross) if (part := _refund_part(r)) is not None]
    if obj.get("status") == "succeeded" and obj.get("captured") is not False:
        parts += [_capture(base, "succeeded"), _authorization(_amount(obj, "amount"), "captured")]
    return build_event(
        env,
        event_type=etype,
        payment_id=pi or charge,
        kind=Kind.REFUND,
        occurred_at=occurred,
        status=Status.REFUNDED if full else Status.PARTIALLY_REFUNDED,
        amount_minor=refunded,
        currency=_currency(obj),
        provider_status=str_at(obj, "status"),
        related_ids=_related(payment_intent=pi, charge=charge),
        refunded_total_minor=refunded,
        parts=parts,
    )


def _without_release(listed: list[Json], released: int, gross: int) -> list[Json]:
    """The listed refunds less the one a partial capture made for its uncaptured rest: the charge's
    oldest, for exactly that amount, and only when the list holds every refund (it sums to the total)."""
    if not released or sum(int_at(r, "amount") or 0 for r in listed
                           if r.get("status") not in _REFUND_NOT_COUNTED) != gross:
        return listed
    candidates = [r for r in listed if int_at(r, "amount") == released and r.get("status") == "succeeded"]
    if not candidates:
        return listed
    release = min(candidates, key=lambda r: (int_at(r, "created") or 0, str(r.get("id"))))
    return [r for r in listed if r is not release]


def _refund(env: WebhookEnvelope, etype: str, obj: Json, occurred: datetime) -> PaymentEvent:
    _expect_object(obj, "refund")
    refund = str_at(obj, "id")
    if refund is None:
        raise NormalizeError("missing_field", "data.object.id (refund id)")
    charge, pi = ref_id(obj.get("charge")), ref_id(obj.get("payment_intent"))
    payment_id = pi or charge
    if payment_id is None:
        raise NormalizeError("missing_payment_id", "refund names neither payment_intent nor charge")
    own_status = str_at(obj, "status")
    amount = _amount(obj, "amount")
    if obj.get("reason") == _RELEASE_REASON:  # Stripe released an uncaptured charge: a void
        return build_event(env, event_type=etype, payment_id=payment_id, kind=Kind.AUTHORIZATION,
                           occurred_at=occurred, status=Status.CANCELED, amount_minor=amount,
                           currency=_currency(obj), provider_status=own_status,
                           related_ids=_related(payment_intent=pi, charge=charge, refund=refund),
                           parts=[_authorization(amount, "voided")])
    counted = etype != "refund.failed" and own_status not in _REFUND_NOT_COUNTED
    part = _refund_part(obj, etype)
    return build_event(
        env,
        event_type=etype,
        payment_id=payment_id,
        kind=Kind.REFUND,
        occurred_at=occurred,
        status=Status.PARTIALLY_REFUNDED if counted else None,
        amount_minor=amount,
        currency=_currency(obj),
        provider_status=own_status,
        related_ids=_related(payment_intent=pi, charge=charge, refund=refund),
        parts=[part] if part is not None else [],
    )


def _dispute(env: WebhookEnvelope, etype: str, obj: Json, occurred: datetime) -> PaymentEvent:
    _expect_object(obj, "dispute")
    charge, pi = ref_id(obj.get("charge")), ref_id(obj.get("payment_intent"))
    payment_id = pi or charge
    if payment_id is None:
        raise NormalizeError("missing_payment_id", "dispute names neither payment_intent nor charge")
    own_status = str_at(obj, "status")
    status = _DISPUTE_STATUS[etype]
    if status is None:
        status = _CLOSED_DISPUTE.get(own_status or "")
        if status is None:
            raise NormalizeError("unexpected_status", f"closed dispute with status {own_status!r}")
    amount = _amount(obj, "amount")
    if status is Status.DISPUTE_WON:
        outcome = "won"
    else:
        outcome = _DISPUTE_PART_STATUS.get(own_status or "", "lost" if status is Status.DISPUTE_LOST else "open")
    dispute = str_at(obj, "id")
    return build_event(
        env,
        event_type=etype,
        payment_id=payment_id,
        kind=Kind.DISPUTE,
        occurred_at=occurred,
        status=status,
        amount_minor=amount,
        currency=_currency(obj),
        provider_status=own_status,
        related_ids=_related(payment_intent=pi, charge=charge, dispute=dispute),
        parts=[MoneyPart("dispute", dispute or "", amount, outcome)],
    )


_Handler = Callable[[WebhookEnvelope, str, Json, datetime], PaymentEvent]
_HANDLERS: dict[str, _Handler] = {
    **dict.fromkeys(_PAYMENT_INTENT_STATUS, _payment_intent),
    **dict.fromkeys(_CHARGE_STATUS, _charge),
    "charge.refunded": _charge_refunded,
    **dict.fromkeys(_REFUND_TYPES, _refund),
    **dict.fromkeys(_DISPUTE_STATUS, _dispute),
}
MAPPED_TYPES = frozenset(_HANDLERS)
"""Every Stripe event type with a payment meaning; anything else is kind "other"."""


def _other(env: WebhookEnvelope, etype: str, doc: Json, obj: Json | None, occurred: datetime) -> PaymentEvent:
    """Unmapped or thin event: keep it visible, claim nothing about money it does not state plainly."""
    payment_id = str_at(obj, "id") or ref_id(doc.get("related_object")) or env.provider_event_id
    amount: int | None = None
    currency: str | None = None
    if obj is not None and obj.get("amount") is not None and obj.get("currency") is not None:
        try:
            amount, currency = check_minor(obj.get("amount")), currency_code(obj.get("currency"))
        except NormalizeError:
            amount, currency = None, None
    return build_event(
        env,
        event_type=etype,
        payment_id=payment_id,
        kind=Kind.OTHER,
        occurred_at=occurred,
        amount_minor=amount,
        currency=currency,
        provider_status=str_at(obj, "status"),
    )


def normalize_stripe(env: WebhookEnvelope, doc: Json) -> PaymentEvent:
    """Map one Stripe event (snapshot or thin) onto the canonical lifecycle."""
    etype = check_envelope(env, doc, type_key="type", id_key="id")
    obj = obj_at(obj_at(doc, "data"), "object")
    handler = None if doc.get("object") == "v2.core.event" else _HANDLERS.get(etype)
    created = [doc.get("created"), obj.get("created") if obj is not None else None]
    occurred = resolve_time(created, env, strict=handler is not None)
    if handler is None:
        return _other(env, etype, doc, obj, occurred)
    if obj is None:
        raise NormalizeError("missing_field", "data.object")
    return handler(env, etype, obj, occurred)
