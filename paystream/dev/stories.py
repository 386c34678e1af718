"""Money stories: one payment's refunds, disputes and authorizations in every shape a provider sends.

Each `Story` is the deliveries of one payment (in the order the provider sent them) and the
`payments` row they must produce. Stripe stories come in both API shapes: before 2022-11-15
(`charge.refunded` embeds `refunds.data[]`, the shape most accounts still send) and after it
(`refund.*` / `charge.refund.updated` events). Dispute and refund objects may name only their
charge (`payment_intent: null`), and PayPal refunds and disputes name only the capture, so some
stories deliver such an event before the payment's own. Bodies carry the fields the
normalizers read, shaped as in shared/reference/providers.md and shared/data/payloads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from paystream.dev.scenarios import Delivery, paypal_capture, paypal_dispute, stripe_payment_intent

__all__ = ["AMOUNT", "Expected", "Story", "all_stories"]

AMOUNT = 2000
CURRENCY = "USD"


@dataclass(frozen=True)
class Expected:
    """The `payments` row a story must end with."""

    status: str
    captured: int = AMOUNT
    refunded: int = 0
    refund_pending: int = 0
    authorized: int = 0
    disputed: int = 0
    dispute_status: str | None = None
    dispute_count: int = 0

    def row(self) -> tuple[object, ...]:
        return (self.status, self.captured, self.refunded, self.refund_pending, self.authorized, self.disputed,
                self.dispute_status, self.dispute_count)


@dataclass
class Story:
    name: str
    provider: str
    payment_id: str
    """The canonical payment: Stripe's PaymentIntent, PayPal's order."""
    deliveries: list[Delivery]
    expected: Expected
    at: datetime
    confirmed: bool = True
    """Whether the provider captured money (reconciliation counts it as confirmed)."""
    notes: list[str] = field(default_factory=list)

    @property
    def payment_key(self) -> str:
        return f"{self.provider}:{self.payment_id}"


def _dump(data: Mapping[str, object]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _stripe_event(event_id: str, event_type: str, created: int, obj: dict[str, object]) -> Delivery:
    body = {"id": event_id, "object": "event", "created": created, "type": event_type, "livemode": False,
            "data": {"object": obj}}
    return Delivery("stripe", event_id, event_type, _dump(body), str(obj.get("payment_intent") or obj["id"]))


def _charge(name: str, n: int, event_type: str, pi: str, ch: str, created: int, *, refunded: int = 0,
            refunds: list[tuple[str, int, str]] | None = None) -> Delivery:
    """A Charge event; `refunds` (old API shape) embeds `refunds.data[]`, newest first."""
    obj: dict[str, object] = {
        "id": ch, "object": "charge", "amount": AMOUNT, "amount_captured": AMOUNT, "amount_refunded": refunded,
        "refunded": refunded >= AMOUNT, "captured": True, "paid": True, "status": "succeeded",
        "currency": CURRENCY.lower(), "payment_intent": pi, "created": created,
    }
    if refunds is not None:
        obj["refunds"] = {"object": "list", "has_more": False, "total_count": len(refunds), "data": [
            {"id": rid, "object": "refund", "amount": amount, "status": status, "charge": ch, "payment_intent": pi,
             "currency": CURRENCY.lower(), "created": created} for rid, amount, status in refunds]}
    return _stripe_event(f"evt_{name}_{n}", event_type, created, obj)


def _refund(name: str, n: int, event_type: str, rid: str, pi: str | None, ch: str, created: int, amount: int,
            status: str) -> Delivery:
    obj = {"id": rid, "object": "refund", "amount": amount, "currency": CURRENCY.lower(), "status": status,
           "charge": ch, "payment_intent": pi, "created": created}
    return _stripe_event(f"evt_{name}_{n}", event_type, created, obj)


def _dispute(name: str, n: int, event_type: str, dp: str, pi: str | None, ch: str, created: int,
             status: str, amount: int = AMOUNT) -> Delivery:
    obj = {"id": dp, "object": "dispute", "amount": amount, "currency": CURRENCY.lower(), "status": status,
           "charge": ch, "payment_intent": pi, "created": created, "reason": "fraudulent"}
    return _stripe_event(f"evt_{name}_{n}", event_type, created, obj)


def _stripe_stories(at: Callable[[int], datetime]) -> list[Story]:
    stories: list[Story] = []

    def story(name: str, deliveries: Callable[[str, str, int], list[Delivery]], expected: Expected,
              confirmed: bool = True) -> None:
        when = at(len(stories))
        pi, ch, t = f"pi_{name}", f"ch_{name}", int(when.timestamp())
        stories.append(Story(name, "stripe", pi, deliveries(pi, ch, t), expected, when, confirmed))

    def paid(name: str, pi: str, ch: str, t: int) -> list[Delivery]:
        return [stripe_payment_intent("payment_intent.succeeded", pi, amount=AMOUNT, currency=CURRENCY, created=t,
                                      charge=ch, event_id=f"evt_{name}_0"),
                _charge(name, 1, "charge.succeeded", pi, ch, t)]

    name = "stripe_old_two_partial_refunds"
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _charge(name, 2, "charge.refunded", pi, ch, t + 60, refunded=500, refunds=[("re_a", 500, "succeeded")]),
        _charge(name, 3, "charge.refunded", pi, ch, t + 120, refunded=1500,
                refunds=[("re_b", 1000, "succeeded"), ("re_a", 500, "succeeded")]),
    ], Expected("partially_refunded", refunded=1500))
    name = "stripe_new_two_partial_refunds"
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _refund(name, 2, "refund.created", "re_c", pi, ch, t + 60, 500, "succeeded"),
        _refund(name, 3, "refund.created", "re_d", pi, ch, t + 120, 1000, "succeeded"),
    ], Expected("partially_refunded", refunded=1500))
    name = "stripe_new_refund_failed"
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _refund(name, 2, "refund.created", "re_e", pi, ch, t + 60, AMOUNT, "pending"),
        _refund(name, 3, "refund.failed", "re_e", pi, ch, t + 3600, AMOUNT, "failed"),
    ], Expected("succeeded"))
    name = "stripe_old_refund_then_failed"  # the failure names only the charge
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _charge(name, 2, "charge.refunded", pi, ch, t + 60, refunded=AMOUNT, refunds=[("re_f", AMOUNT, "succeeded")]),
        _refund(name, 3, "charge.refund.updated", "re_f", None, ch, t + 3600, AMOUNT, "failed"),
    ], Expected("succeeded"))
    name = "stripe_new_refund_canceled"
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _refund(name, 2, "refund.created", "re_g", pi, ch, t + 60, 700, "pending"),
        _refund(name, 3, "refund.updated", "re_g", pi, ch, t + 600, 700, "canceled"),
    ], Expected("succeeded"))
    name = "stripe_new_refund_pending"
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _refund(name, 2, "refund.created", "re_h", pi, ch, t + 60, 700, "pending"),
    ], Expected("succeeded", refund_pending=700))
    name = "stripe_dispute_updated_then_lost"  # a metadata edit between must not undo the dispute
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _dispute(name, 2, "charge.dispute.created", "dp_a", None, ch, t + 60, "needs_response"),
        _charge(name, 3, "charge.updated", pi, ch, t + 7200),
        _dispute(name, 4, "charge.dispute.closed", "dp_a", None, ch, t + 3600, "lost"),
    ], Expected("dispute_lost", disputed=AMOUNT, dispute_status="lost", dispute_count=1))
    name = "stripe_dispute_won"
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _dispute(name, 2, "charge.dispute.created", "dp_b", pi, ch, t + 60, "needs_response"),
        _dispute(name, 3, "charge.dispute.closed", "dp_b", pi, ch, t + 600, "won"),
    ], Expected("dispute_won", dispute_status="won", dispute_count=1))
    name = "stripe_partial_refund_during_dispute"
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _dispute(name, 2, "charge.dispute.created", "dp_c", pi, ch, t + 60, "needs_response"),
        _refund(name, 3, "refund.created", "re_i", pi, ch, t + 120, 500, "succeeded"),
    ], Expected("disputed", refunded=500, disputed=AMOUNT, dispute_status="open", dispute_count=1))
    name = "stripe_dispute_before_payment"  # names only the charge and is delivered first
    story(name, lambda pi, ch, t: [
        _dispute(name, 2, "charge.dispute.created", "dp_d", None, ch, t + 60, "needs_response"),
        *paid(name, pi, ch, t),
    ], Expected("disputed", disputed=AMOUNT, dispute_status="open", dispute_count=1))
    name = "stripe_refund_before_payment"
    story(name, lambda pi, ch, t: [
        _refund(name, 2, "charge.refund.updated", "re_j", None, ch, t + 60, 300, "succeeded"),
        *paid(name, pi, ch, t),
    ], Expected("partially_refunded", refunded=300))
    return stories


def _paypal(event_id: str, event_type: str, resource_type: str, when: datetime, resource: Mapping[str, object],
            payment: str) -> Delivery:
    body = {"id": event_id, "event_version": "1.0", "create_time": _rfc3339(when), "resource_type": resource_type,
            "resource_version": "2.0", "event_type": event_type, "summary": event_type, "resource": resource}
    return Delivery("paypal", event_id, event_type, _dump(body), payment)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(minor: int) -> dict[str, str]:
    return {"currency_code": CURRENCY, "value": f"{minor // 100}.{minor % 100:02d}"}


def _pp_refund(name: str, n: int, refund: str, capture: str, order: str, when: datetime, amount: int, status: str,
               total: int) -> Delivery:
    resource = {"id": refund, "status": status, "amount": _money(amount),
                "seller_payable_breakdown": {"total_refunded_amount": _money(total)},
                "create_time": _rfc3339(when), "update_time": _rfc3339(when),
                "links": [{"href": f"https://api.paypal.com/v2/payments/captures/{capture}", "rel": "up"}]}
    return _paypal(f"WH-{name}-{n}", "PAYMENT.CAPTURE.REFUNDED", "refund", when, resource, order)


def _pp_order(name: str, n: int, event_type: str, order: str, when: datetime, *,
              authorization: tuple[str, str] | None = None) -> Delivery:
    resource: dict[str, object] = {"id": order, "intent": "AUTHORIZE",
                                   "status": "COMPLETED" if event_type.endswith("COMPLETED") else "APPROVED",
                                   "create_time": _rfc3339(when), "update_time": _rfc3339(when),
                                   "purchase_units": [{"reference_id": "default", "amount": _money(AMOUNT)}]}
    if authorization is not None:
        auth_id, status = authorization
        resource["purchase_units"] = [{"reference_id": "default", "amount": _money(AMOUNT), "payments": {
            "authorizations": [{"id": auth_id, "status": status, "amount": _money(AMOUNT)}]}}]
    return _paypal(f"WH-{name}-{n}", event_type, "checkout-order", when, resource, order)


def _pp_authorization(name: str, n: int, event_type: str, auth: str, order: str, when: datetime) -> Delivery:
    resource = {"id": auth, "status": "VOIDED" if event_type.endswith("VOIDED") else "CREATED",
                "amount": _money(AMOUNT), "create_time": _rfc3339(when), "update_time": _rfc3339(when),
                "supplementary_data": {"related_ids": {"order_id": order}},
                "links": [{"href": f"https://api.paypal.com/v2/checkout/orders/{order}", "rel": "up"}]}
    return _paypal(f"WH-{name}-{n}", event_type, "authorization", when, resource, order)


def _pp_capture(name: str, n: int, capture: str, order: str, when: datetime, authorization: str | None = None
                ) -> Delivery:
    delivery = paypal_capture("PAYMENT.CAPTURE.COMPLETED", capture, order=order, amount=AMOUNT, currency=CURRENCY,
                              when=when)
    body = json.loads(delivery.body)
    body["id"] = f"WH-{name}-{n}"
    if authorization is not None:
        body["resource"]["supplementary_data"]["related_ids"]["authorization_id"] = authorization
    return Delivery("paypal", body["id"], delivery.event_type, _dump(body), order)


def _pp_dispute(name: str, n: int, event_type: str, dispute: str, capture: str, order: str, when: datetime,
                outcome: str | None = None) -> Delivery:
    delivery = paypal_dispute(event_type, dispute, capture, amount=AMOUNT, currency=CURRENCY, when=when,
                              outcome=outcome)
    body = json.loads(delivery.body)
    body["id"] = f"WH-{name}-{n}"
    return Delivery("paypal", body["id"], event_type, _dump(body), order)


def _paypal_stories(at: Callable[[int], datetime], offset: int) -> list[Story]:
    stories: list[Story] = []

    def story(name: str, deliveries: Callable[[str, str, datetime], list[Delivery]], expected: Expected,
              confirmed: bool = True) -> None:
        when = at(offset + len(stories))
        order, capture = f"O-{name}".upper().replace("_", "-"), f"C-{name}".upper().replace("_", "-")
        stories.append(Story(name, "paypal", order, deliveries(order, capture, when), expected, when, confirmed))

    minute = timedelta(minutes=1)
    name = "paypal_two_partial_refunds"
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_refund(name, 1, "R-PP-A", c, o, w + minute, 500, "COMPLETED", 500),
        _pp_refund(name, 2, "R-PP-B", c, o, w + 2 * minute, 1000, "COMPLETED", 1500),
    ], Expected("partially_refunded", refunded=1500))
    name = "paypal_refund_pending_then_failed"
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_refund(name, 1, "R-PP-C", c, o, w + minute, AMOUNT, "PENDING", AMOUNT),
        _pp_refund(name, 2, "R-PP-C", c, o, w + 30 * minute, AMOUNT, "FAILED", 0),
    ], Expected("succeeded"))
    name = "paypal_refund_canceled"
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_refund(name, 1, "R-PP-D", c, o, w + minute, 800, "PENDING", 800),
        _pp_refund(name, 2, "R-PP-D", c, o, w + 10 * minute, 800, "CANCELLED", 0),
    ], Expected("succeeded"))
    name = "paypal_dispute_lost"
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-1", c, o, w + minute),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-1", c, o, w + 30 * minute,
                    "RESOLVED_BUYER_FAVOUR"),
    ], Expected("dispute_lost", disputed=AMOUNT, dispute_status="lost", dispute_count=1))
    name = "paypal_dispute_won"
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-2", c, o, w + minute),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-2", c, o, w + 30 * minute,
                    "RESOLVED_SELLER_FAVOUR"),
    ], Expected("dispute_won", dispute_status="won", dispute_count=1))
    name = "paypal_partial_refund_during_dispute"
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-3", c, o, w + minute),
        _pp_refund(name, 2, "R-PP-E", c, o, w + 2 * minute, 500, "COMPLETED", 500),
    ], Expected("disputed", refunded=500, disputed=AMOUNT, dispute_status="open", dispute_count=1))
    name = "paypal_authorize_capture_refund"
    story(name, lambda o, c, w: [
        _pp_order(name, 0, "CHECKOUT.ORDER.APPROVED", o, w),
        _pp_order(name, 1, "CHECKOUT.ORDER.COMPLETED", o, w + minute, authorization=("AU-PP-A", "CREATED")),
        _pp_authorization(name, 2, "PAYMENT.AUTHORIZATION.CREATED", "AU-PP-A", o, w + minute),
        _pp_capture(name, 3, c, o, w + 10 * minute, authorization="AU-PP-A"),
        _pp_refund(name, 4, "R-PP-F", c, o, w + 20 * minute, 500, "COMPLETED", 500),
    ], Expected("partially_refunded", refunded=500))
    name = "paypal_authorized_only"
    story(name, lambda o, c, w: [
        _pp_order(name, 0, "CHECKOUT.ORDER.APPROVED", o, w),
        _pp_order(name, 1, "CHECKOUT.ORDER.COMPLETED", o, w + minute, authorization=("AU-PP-B", "CREATED")),
    ], Expected("authorized", captured=0, authorized=AMOUNT), confirmed=False)
    name = "paypal_authorization_voided"
    story(name, lambda o, c, w: [
        _pp_order(name, 0, "CHECKOUT.ORDER.COMPLETED", o, w, authorization=("AU-PP-C", "CREATED")),
        _pp_authorization(name, 1, "PAYMENT.AUTHORIZATION.CREATED", "AU-PP-C", o, w),
        _pp_authorization(name, 2, "PAYMENT.AUTHORIZATION.VOIDED", "AU-PP-C", o, w + 60 * minute),
    ], Expected("canceled", captured=0), confirmed=False)
    name = "paypal_refund_and_dispute_before_capture"  # name only the capture, delivered first
    story(name, lambda o, c, w: [
        _pp_refund(name, 1, "R-PP-G", c, o, w + 2 * minute, 500, "COMPLETED", 500),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.CREATED", "PP-D-4", c, o, w + 3 * minute),
        _pp_capture(name, 0, c, o, w),
    ], Expected("disputed", refunded=500, disputed=AMOUNT, dispute_status="open", dispute_count=1))
    return stories


def all_stories(start: datetime, *, hours_apart: int = 1) -> list[Story]:
    """Every story, each in its own hour from `start`, so each lands in its own reconciliation window."""
    def at(index: int) -> datetime:
        return start + timedelta(hours=index * hours_apart, minutes=5)

    stripe = _stripe_stories(at)
    return stripe + _paypal_stories(at, len(stripe))
