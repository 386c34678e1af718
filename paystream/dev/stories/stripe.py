"""Stripe money stories in both API shapes: before 2022-11-15 `charge.refunded` embeds `refunds.data[]`
(the shape most accounts still send), after it refunds come as `refund.*` / `charge.refund.updated` events.
Dispute and refund objects may name only their charge (`payment_intent: null`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from paystream.dev.scenarios import Delivery, dump_body, stripe_payment_intent
from paystream.dev.stories.model import AMOUNT, CURRENCY, Expected, Story

__all__ = ["stripe_stories"]


def _stripe_event(event_id: str, event_type: str, created: int, obj: dict[str, object]) -> Delivery:
    body = {"id": event_id, "object": "event", "created": created, "type": event_type, "livemode": False,
            "data": {"object": obj}}
    return Delivery("stripe", event_id, event_type, dump_body(body), str(obj.get("payment_intent") or obj["id"]))


def _charge(name: str, n: int, event_type: str, pi: str, ch: str, created: int, *, refunded: int = 0,
            refunds: list[tuple[str, int, str]] | None = None, captured: int | None = AMOUNT) -> Delivery:
    """A Charge event; `refunds` (old API shape) embeds `refunds.data[]`, newest first, each created a second
    after the one below it. `captured` None: an uncaptured charge (a hold), released once `refunded` is set."""
    obj: dict[str, object] = {
        "id": ch, "object": "charge", "amount": AMOUNT, "amount_captured": captured or 0,
        "amount_refunded": refunded, "refunded": refunded >= AMOUNT, "captured": captured is not None,
        "paid": True, "status": "succeeded", "currency": CURRENCY.lower(), "payment_intent": pi, "created": created,
    }
    if refunds is not None:
        obj["refunds"] = {"object": "list", "has_more": False, "total_count": len(refunds), "data": [
            {"id": rid, "object": "refund", "amount": amount, "status": status, "charge": ch, "payment_intent": pi,
             "currency": CURRENCY.lower(), "created": created - i} for i, (rid, amount, status) in enumerate(refunds)]}
    return _stripe_event(f"evt_{name}_{n}", event_type, created, obj)


def _intent(name: str, n: int, event_type: str, pi: str, ch: str, created: int, *, received: int = 0,
            capturable: int = 0, status: str = "requires_capture") -> Delivery:
    """A PaymentIntent with manual capture (a hold first, then a capture of `received`)."""
    obj = {"id": pi, "object": "payment_intent", "amount": AMOUNT, "amount_received": received,
           "amount_capturable": capturable, "capture_method": "manual", "currency": CURRENCY.lower(),
           "status": status, "latest_charge": ch, "created": created}
    return _stripe_event(f"evt_{name}_{n}", event_type, created, obj)


def _refund(name: str, n: int, event_type: str, rid: str, pi: str | None, ch: str, created: int, amount: int,
            status: str, reason: str | None = None) -> Delivery:
    obj = {"id": rid, "object": "refund", "amount": amount, "currency": CURRENCY.lower(), "status": status,
           "charge": ch, "payment_intent": pi, "created": created, "reason": reason}
    return _stripe_event(f"evt_{name}_{n}", event_type, created, obj)


def _dispute(name: str, n: int, event_type: str, dp: str, pi: str | None, ch: str, created: int,
             status: str, amount: int = AMOUNT) -> Delivery:
    obj = {"id": dp, "object": "dispute", "amount": amount, "currency": CURRENCY.lower(), "status": status,
           "charge": ch, "payment_intent": pi, "created": created, "reason": "fraudulent"}
    return _stripe_event(f"evt_{name}_{n}", event_type, created, obj)


def stripe_stories(at: Callable[[int], datetime]) -> list[Story]:
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
    name = "stripe_new_total_then_refund_failed"  # refund.created not subscribed: the total counted it
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _charge(name, 2, "charge.refunded", pi, ch, t + 60, refunded=AMOUNT),
        _refund(name, 3, "refund.failed", "re_m", pi, ch, t + 3600, AMOUNT, "failed"),
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
    # Stripe withdraws a dispute's amount whatever was refunded, and refuses to refund disputed money:
    # a Stripe refund never settles a dispute
    name = "stripe_partial_refund_during_dispute"
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _dispute(name, 2, "charge.dispute.created", "dp_c", pi, ch, t + 60, "needs_response"),
        _refund(name, 3, "refund.created", "re_i", pi, ch, t + 120, 500, "succeeded"),
    ], Expected("disputed", refunded=500, disputed=AMOUNT, dispute_status="open", dispute_count=1))
    name = "stripe_refund_right_after_a_lost_dispute"  # the undisputed rest, refunded on the closing
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _dispute(name, 2, "charge.dispute.created", "dp_g", pi, ch, t + 60, "needs_response", amount=1200),
        _dispute(name, 3, "charge.dispute.closed", "dp_g", pi, ch, t + 3600, "lost", amount=1200),
        _refund(name, 4, "refund.created", "re_o", pi, ch, t + 3630, 800, "succeeded"),
    ], Expected("dispute_lost", refunded=800, disputed=1200, dispute_status="lost", dispute_count=1))
    name = "stripe_refund_during_an_inquiry_that_escalates"  # the escalated amount is what is withdrawn
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _dispute(name, 2, "charge.dispute.created", "dp_h", pi, ch, t + 60, "warning_needs_response"),
        _refund(name, 3, "refund.created", "re_p", pi, ch, t + 120, 500, "succeeded"),
        _dispute(name, 4, "charge.dispute.updated", "dp_h", pi, ch, t + 300, "needs_response", amount=1500),
        _dispute(name, 5, "charge.dispute.closed", "dp_h", pi, ch, t + 3600, "lost", amount=1500),
    ], Expected("dispute_lost", refunded=500, disputed=1500, dispute_status="lost", dispute_count=1))
    name = "stripe_new_totals_around_a_dispute"  # refunds known only from amount_refunded
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _charge(name, 2, "charge.refunded", pi, ch, t + 60, refunded=500),
        _dispute(name, 3, "charge.dispute.created", "dp_i", pi, ch, t + 120, "needs_response", amount=1500),
        _charge(name, 4, "charge.refunded", pi, ch, t + 180, refunded=800),
    ], Expected("disputed", refunded=800, disputed=1500, dispute_status="open", dispute_count=1))
    name = "stripe_refunded_then_dispute_lost"  # the refund came first: the merchant loses the money twice
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _refund(name, 2, "refund.created", "re_n", pi, ch, t + 60, AMOUNT, "succeeded"),
        _dispute(name, 3, "charge.dispute.created", "dp_f", pi, ch, t + 120, "needs_response"),
        _dispute(name, 4, "charge.dispute.closed", "dp_f", pi, ch, t + 3600, "lost"),
    ], Expected("dispute_lost", refunded=AMOUNT, disputed=AMOUNT, dispute_status="lost", dispute_count=1))
    name = "stripe_dispute_before_payment"  # names only the charge and is delivered first
    story(name, lambda pi, ch, t: [
        _dispute(name, 2, "charge.dispute.created", "dp_d", None, ch, t + 60, "needs_response"),
        *paid(name, pi, ch, t),
    ], Expected("disputed", disputed=AMOUNT, dispute_status="open", dispute_count=1))
    partial, rest = 1500, AMOUNT - 1500

    def held(name: str, pi: str, ch: str, t: int) -> list[Delivery]:
        return [_intent(name, 0, "payment_intent.amount_capturable_updated", pi, ch, t, capturable=AMOUNT),
                _charge(name, 1, "charge.succeeded", pi, ch, t, captured=None)]

    def captured_in_part(name: str, pi: str, ch: str, t: int, *, old: bool) -> list[Delivery]:
        """The hold captured for 1500: Stripe books the uncaptured 500 as refunded (and lists a refund for it)."""
        return [*held(name, pi, ch, t),
                _charge(name, 2, "charge.captured", pi, ch, t + 60, captured=partial, refunded=rest,
                        refunds=[(f"re_{name}_rest", rest, "succeeded")] if old else None),
                _intent(name, 3, "payment_intent.succeeded", pi, ch, t + 60, received=partial, status="succeeded")]

    name = "stripe_old_partial_capture_then_refund"  # amount_refunded counts the released 500 too
    story(name, lambda pi, ch, t: [
        *captured_in_part(name, pi, ch, t, old=True),
        _charge(name, 4, "charge.refunded", pi, ch, t + 120, captured=partial, refunded=rest + 300,
                refunds=[("re_k", 300, "succeeded"), (f"re_{name}_rest", rest, "succeeded")]),
    ], Expected("partially_refunded", captured=partial, refunded=300))
    name = "stripe_new_partial_capture_refunded_in_full"
    story(name, lambda pi, ch, t: [
        *captured_in_part(name, pi, ch, t, old=False),
        _refund(name, 4, "refund.created", "re_l", pi, ch, t + 120, partial, "succeeded"),
        _charge(name, 5, "charge.refunded", pi, ch, t + 120, captured=partial, refunded=AMOUNT),
    ], Expected("refunded", captured=partial, refunded=partial))
    name = "stripe_old_hold_canceled"  # releasing a hold is booked as a refund of the whole charge
    story(name, lambda pi, ch, t: [
        *held(name, pi, ch, t),
        _intent(name, 2, "payment_intent.canceled", pi, ch, t + 600, status="canceled"),
        _charge(name, 3, "charge.refunded", pi, ch, t + 600, captured=None, refunded=AMOUNT,
                refunds=[(f"re_{name}", AMOUNT, "succeeded")]),
        _charge(name, 4, "charge.updated", pi, ch, t + 7200, captured=None, refunded=AMOUNT),
    ], Expected("canceled", captured=0), confirmed=False)
    name = "stripe_new_hold_expired"
    story(name, lambda pi, ch, t: [
        *held(name, pi, ch, t),
        _charge(name, 2, "charge.expired", pi, ch, t + 7 * 86400, captured=None, refunded=AMOUNT),
        _refund(name, 3, "refund.created", f"re_{name}", pi, ch, t + 7 * 86400, AMOUNT, "succeeded",
                reason="expired_uncaptured_charge"),
        _charge(name, 4, "charge.updated", pi, ch, t + 8 * 86400, captured=None, refunded=AMOUNT),
    ], Expected("canceled", captured=0), confirmed=False)
    name = "stripe_expired_hold_void_names_only_the_charge"  # delivered first: held, then on to the PaymentIntent
    story(name, lambda pi, ch, t: [
        _refund(name, 3, "charge.refund.updated", f"re_{name}", None, ch, t + 7 * 86400, AMOUNT, "succeeded",
                reason="expired_uncaptured_charge"),
        *held(name, pi, ch, t),
    ], Expected("canceled", captured=0), confirmed=False)
    name = "stripe_inquiry_open"  # an inquiry moves no money until it becomes a dispute
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _dispute(name, 2, "charge.dispute.created", "dp_e", pi, ch, t + 60, "warning_needs_response"),
    ], Expected("disputed", dispute_status="inquiry", dispute_count=1))
    name = "stripe_new_totals_in_one_second"  # the later total has the smaller event id
    story(name, lambda pi, ch, t: [
        *paid(name, pi, ch, t),
        _charge(name, 3, "charge.refunded", pi, ch, t + 60, refunded=500),
        _charge(name, 2, "charge.refunded", pi, ch, t + 60, refunded=1500),
    ], Expected("partially_refunded", refunded=1500))
    name = "stripe_refund_before_payment"
    story(name, lambda pi, ch, t: [
        _refund(name, 2, "charge.refund.updated", "re_j", None, ch, t + 60, 300, "succeeded"),
        *paid(name, pi, ch, t),
    ], Expected("partially_refunded", refunded=300))
    return stories
