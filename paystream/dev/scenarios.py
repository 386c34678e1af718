"""Realistic provider event bodies and payment scenarios (for `paystream send`, tests and benchmarks).

Bodies follow the shapes in `shared/reference/providers.md` (Stripe API 2022-11-15+
objects; PayPal v2 captures/refunds; disputes), with the fields the normalizers read.
`Delivery.payment_id` is the canonical payment (Stripe's PaymentIntent, PayPal's order).
Every money shape, including Stripe's pre-2022 one, is in `paystream/dev/stories/`.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

__all__ = [
    "Delivery",
    "dump_body",
    "paypal_capture",
    "paypal_dispute",
    "paypal_refund",
    "scenario",
    "stripe_charge_refunded",
    "stripe_dispute",
    "stripe_payment_intent",
    "stripe_refund",
]

ZERO_DECIMAL = {"JPY", "KRW", "VND", "CLP", "ISK", "HUF_PAYPAL"}


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery: which endpoint, the exact body, and the provider event id."""

    provider: str
    event_id: str
    event_type: str
    body: bytes
    payment_id: str


def dump_body(data: Mapping[str, object]) -> bytes:
    """A delivery body as providers send it: compact JSON bytes."""
    return json.dumps(data, separators=(",", ":")).encode()


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


# Stripe --------------------------------------------------------------------------------------------

def stripe_payment_intent(event_type: str, pi: str, *, amount: int, currency: str, created: int,
                          charge: str | None = None, event_id: str | None = None) -> Delivery:
    status = {
        "payment_intent.created": "requires_payment_method", "payment_intent.requires_action": "requires_action",
        "payment_intent.processing": "processing", "payment_intent.amount_capturable_updated": "requires_capture",
        "payment_intent.succeeded": "succeeded", "payment_intent.payment_failed": "requires_payment_method",
        "payment_intent.canceled": "canceled",
    }[event_type]
    obj: dict[str, object] = {
        "id": pi, "object": "payment_intent", "amount": amount, "currency": currency.lower(), "status": status,
        "created": created, "livemode": False, "latest_charge": charge,
        "amount_received": amount if status == "succeeded" else 0,
        "amount_capturable": amount if status == "requires_capture" else 0,
        "capture_method": "automatic",
    }
    if event_type == "payment_intent.payment_failed":
        obj["last_payment_error"] = {"code": "card_declined", "type": "card_error"}
    event_id = event_id or _id("evt")
    body = {"id": event_id, "object": "event", "api_version": "2024-06-20", "created": created, "livemode": False,
            "type": event_type, "data": {"object": obj}}
    return Delivery("stripe", event_id, event_type, dump_body(body), pi)


def stripe_charge_refunded(pi: str, charge: str, *, amount: int, amount_refunded: int, currency: str,
                           created: int) -> Delivery:
    event_id = _id("evt")
    obj = {"id": charge, "object": "charge", "amount": amount, "amount_captured": amount,
           "amount_refunded": amount_refunded, "refunded": amount_refunded >= amount, "captured": True,
           "currency": currency.lower(), "payment_intent": pi, "status": "succeeded", "created": created}
    body = {"id": event_id, "object": "event", "created": created, "type": "charge.refunded", "livemode": False,
            "data": {"object": obj}}
    return Delivery("stripe", event_id, "charge.refunded", dump_body(body), pi)


def stripe_refund(event_type: str, refund: str, pi: str, charge: str, *, amount: int, currency: str, created: int,
                  status: str = "succeeded") -> Delivery:
    event_id = _id("evt")
    obj = {"id": refund, "object": "refund", "amount": amount, "currency": currency.lower(), "status": status,
           "charge": charge, "payment_intent": pi, "created": created}
    body = {"id": event_id, "object": "event", "created": created, "type": event_type, "livemode": False,
            "data": {"object": obj}}
    return Delivery("stripe", event_id, event_type, dump_body(body), pi)


def stripe_dispute(event_type: str, dispute: str, pi: str, charge: str, *, amount: int, currency: str,
                   created: int, status: str) -> Delivery:
    event_id = _id("evt")
    obj = {"id": dispute, "object": "dispute", "amount": amount, "currency": currency.lower(), "status": status,
           "charge": charge, "payment_intent": pi, "created": created, "reason": "fraudulent"}
    body = {"id": event_id, "object": "event", "created": created, "type": event_type, "livemode": False,
            "data": {"object": obj}}
    return Delivery("stripe", event_id, event_type, dump_body(body), pi)


# PayPal --------------------------------------------------------------------------------------------

def _paypal_value(minor: int, currency: str) -> str:
    if currency in ("JPY", "HUF", "TWD"):
        return str(minor if currency == "JPY" else minor // 100)
    return str((Decimal(minor) / 100).quantize(Decimal("0.01")))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def paypal_capture(event_type: str, capture: str, *, order: str, amount: int, currency: str,
                   when: datetime) -> Delivery:
    status = {"PAYMENT.CAPTURE.COMPLETED": "COMPLETED", "PAYMENT.CAPTURE.PENDING": "PENDING",
              "PAYMENT.CAPTURE.DECLINED": "DECLINED", "PAYMENT.CAPTURE.DENIED": "DENIED"}[event_type]
    event_id = f"WH-{uuid.uuid4().hex[:17].upper()}"
    resource = {
        "id": capture, "status": status, "amount": {"currency_code": currency, "value": _paypal_value(amount,
                                                                                                     currency)},
        "final_capture": True, "create_time": _rfc3339(when), "update_time": _rfc3339(when),
        "supplementary_data": {"related_ids": {"order_id": order}},
        "links": [{"href": f"https://api.paypal.com/v2/checkout/orders/{order}", "rel": "up", "method": "GET"}],
    }
    body = {"id": event_id, "event_version": "1.0", "create_time": _rfc3339(when), "resource_type": "capture",
            "resource_version": "2.0", "event_type": event_type, "summary": "capture", "resource": resource}
    return Delivery("paypal", event_id, event_type, dump_body(body), order)  # the order is the payment


def paypal_refund(event_type: str, refund: str, capture: str, *, amount: int, total_refunded: int, currency: str,
                  when: datetime, order: str | None = None) -> Delivery:
    event_id = f"WH-{uuid.uuid4().hex[:17].upper()}"
    resource = {
        "id": refund, "status": "COMPLETED",
        "amount": {"currency_code": currency, "value": _paypal_value(amount, currency)},
        "seller_payable_breakdown": {"total_refunded_amount": {"currency_code": currency,
                                                               "value": _paypal_value(total_refunded, currency)}},
        "create_time": _rfc3339(when), "update_time": _rfc3339(when),
        "links": [{"href": f"https://api.paypal.com/v2/payments/captures/{capture}", "rel": "up", "method": "GET"}],
    }
    body = {"id": event_id, "event_version": "1.0", "create_time": _rfc3339(when), "resource_type": "refund",
            "resource_version": "2.0", "event_type": event_type, "summary": "refund", "resource": resource}
    return Delivery("paypal", event_id, event_type, dump_body(body), order or capture)


def paypal_dispute(event_type: str, dispute: str, capture: str, *, amount: int, currency: str, when: datetime,
                   outcome: str | None = None, order: str | None = None) -> Delivery:
    event_id = f"WH-{uuid.uuid4().hex[:17].upper()}"
    resource: dict[str, object] = {
        "dispute_id": dispute, "status": "RESOLVED" if outcome else "OPEN",
        "dispute_amount": {"currency_code": currency, "value": _paypal_value(amount, currency)},
        "disputed_transactions": [{"seller_transaction_id": capture}],
        "create_time": _rfc3339(when), "update_time": _rfc3339(when), "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
    }
    if outcome:
        resource["dispute_outcome"] = {"outcome_code": outcome}
    body = {"id": event_id, "event_version": "1.0", "create_time": _rfc3339(when), "resource_type": "dispute",
            "event_type": event_type, "summary": "dispute", "resource": resource}
    return Delivery("paypal", event_id, event_type, dump_body(body), order or capture)


# Scenarios -------------------------------------------------------------------------------------------

def scenario(name: str, provider: str, *, start: datetime | None = None, amount: int = 2000,
             currency: str = "USD", rng: random.Random | None = None) -> Iterator[Delivery]:
    """The deliveries of one payment story: checkout | refund | dispute (storm is applied by the sender)."""
    rng = rng or random.Random()  # noqa: S311 - test data, not security
    at = start or datetime.now(UTC) - timedelta(minutes=5)
    t = int(at.timestamp())
    if provider == "stripe":
        pi, charge = _id("pi"), _id("ch")
        yield stripe_payment_intent("payment_intent.created", pi, amount=amount, currency=currency, created=t)
        yield stripe_payment_intent("payment_intent.processing", pi, amount=amount, currency=currency, created=t + 1)
        yield stripe_payment_intent("payment_intent.succeeded", pi, amount=amount, currency=currency, created=t + 2,
                                    charge=charge)
        if name == "refund":
            half = amount // 2
            yield stripe_refund("refund.created", _id("re"), pi, charge, amount=half, currency=currency, created=t + 60)
            yield stripe_refund("refund.created", _id("re"), pi, charge, amount=amount - half, currency=currency,
                                created=t + 120)
        elif name == "dispute":
            dp = _id("dp")
            yield stripe_dispute("charge.dispute.created", dp, pi, charge, amount=amount, currency=currency,
                                 created=t + 300, status="needs_response")
            won = rng.random() < 0.5
            yield stripe_dispute("charge.dispute.closed", dp, pi, charge, amount=amount, currency=currency,
                                 created=t + 900, status="won" if won else "lost")
    elif provider == "paypal":
        capture, order = f"{uuid.uuid4().hex[:17].upper()}", f"{uuid.uuid4().hex[:17].upper()}"
        yield paypal_capture("PAYMENT.CAPTURE.PENDING", capture, order=order, amount=amount, currency=currency, when=at)
        yield paypal_capture("PAYMENT.CAPTURE.COMPLETED", capture, order=order, amount=amount, currency=currency,
                             when=at + timedelta(seconds=30))
        if name == "refund":
            half = amount // 2
            yield paypal_refund("PAYMENT.CAPTURE.REFUNDED", uuid.uuid4().hex[:17].upper(), capture, amount=half,
                                total_refunded=half, currency=currency, when=at + timedelta(minutes=5), order=order)
            yield paypal_refund("PAYMENT.CAPTURE.REFUNDED", uuid.uuid4().hex[:17].upper(), capture,
                                amount=amount - half, total_refunded=amount, currency=currency,
                                when=at + timedelta(minutes=10), order=order)
        elif name == "dispute":
            dispute = f"PP-D-{rng.randint(10000, 99999)}"
            yield paypal_dispute("CUSTOMER.DISPUTE.CREATED", dispute, capture, amount=amount, currency=currency,
                                 when=at + timedelta(hours=1), order=order)
            yield paypal_dispute("CUSTOMER.DISPUTE.RESOLVED", dispute, capture, amount=amount, currency=currency,
                                 when=at + timedelta(hours=5), outcome="RESOLVED_BUYER_FAVOUR", order=order)
    else:
        raise ValueError(f"no scenarios for provider {provider!r}")
