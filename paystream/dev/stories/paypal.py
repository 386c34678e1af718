"""PayPal money stories: refunds and disputes name only the capture, so some are delivered before it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from paystream.dev.scenarios import Delivery, dump_body, paypal_capture, paypal_dispute
from paystream.dev.stories.model import AMOUNT, CURRENCY, Expected, Story

__all__ = ["paypal_stories"]


def _paypal(event_id: str, event_type: str, resource_type: str, when: datetime, resource: Mapping[str, object],
            payment: str) -> Delivery:
    body = {"id": event_id, "event_version": "1.0", "create_time": _rfc3339(when), "resource_type": resource_type,
            "resource_version": "2.0", "event_type": event_type, "summary": event_type, "resource": resource}
    return Delivery("paypal", event_id, event_type, dump_body(body), payment)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(minor: int) -> dict[str, str]:
    return {"currency_code": CURRENCY, "value": f"{minor // 100}.{minor % 100:02d}"}


def _pp_refund(name: str, n: int, refund: str, capture: str, order: str, when: datetime, amount: int, status: str,
               total: int, event_type: str = "PAYMENT.CAPTURE.REFUNDED") -> Delivery:
    resource = {"id": refund, "status": status, "amount": _money(amount),
                "seller_payable_breakdown": {"total_refunded_amount": _money(total)},
                "create_time": _rfc3339(when), "update_time": _rfc3339(when),
                "links": [{"href": f"https://api.paypal.com/v2/payments/captures/{capture}", "rel": "up"}]}
    if event_type.endswith("REVERSED"):
        resource["note_to_payer"] = "Payment reversed"
    return _paypal(f"WH-{name}-{n}", event_type, "refund", when, resource, order)


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


def _pp_capture(name: str, n: int, capture: str, order: str, when: datetime, authorization: str | None = None,
                *, up_only: bool = False) -> Delivery:
    """`up_only`: the capture names its authorization only through `links[rel=up]`, with no
    `supplementary_data`, as older deliveries do)."""
    delivery = paypal_capture("PAYMENT.CAPTURE.COMPLETED", capture, order=order, amount=AMOUNT, currency=CURRENCY,
                              when=when)
    body = json.loads(delivery.body)
    body["id"] = f"WH-{name}-{n}"
    if up_only and authorization is not None:
        del body["resource"]["supplementary_data"]
        body["resource"]["links"] = [
            {"href": f"https://api.paypal.com/v2/payments/captures/{capture}", "rel": "self", "method": "GET"},
            {"href": f"https://api.paypal.com/v2/payments/authorizations/{authorization}", "rel": "up",
             "method": "GET"}]
    elif authorization is not None:
        body["resource"]["supplementary_data"]["related_ids"]["authorization_id"] = authorization
    return Delivery("paypal", body["id"], delivery.event_type, dump_body(body), order)


def _pp_dispute(name: str, n: int, event_type: str, dispute: str, capture: str, order: str, when: datetime,
                outcome: str | None = None, *, stage: str = "INQUIRY", refunded: int | None = None,
                amount: int = AMOUNT) -> Delivery:
    """`refunded`: the resolution's `dispute_outcome.amount_refunded` (what the buyer got back in the end)."""
    delivery = paypal_dispute(event_type, dispute, capture, amount=amount, currency=CURRENCY, when=when,
                              outcome=outcome)
    body = json.loads(delivery.body)
    body["id"] = f"WH-{name}-{n}"
    body["resource"]["dispute_life_cycle_stage"] = stage
    if refunded is not None:
        body["resource"]["dispute_outcome"]["amount_refunded"] = _money(refunded)
    return Delivery("paypal", body["id"], event_type, dump_body(body), order)


def paypal_stories(at: Callable[[int], datetime], offset: int) -> list[Story]:
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
    ], Expected("disputed", refunded=500, disputed=AMOUNT - 500, dispute_status="open", dispute_count=1))
    name = "paypal_dispute_accepted_with_refund"  # accepting the claim refunds the disputed amount: counted once
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_refund(name, 1, "R-PP-J", c, o, w + minute, 500, "COMPLETED", 500),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.CREATED", "PP-D-9", c, o, w + 2 * minute),
        _pp_refund(name, 3, "R-PP-K", c, o, w + 40 * minute, AMOUNT - 500, "COMPLETED", AMOUNT),
        _pp_dispute(name, 4, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-9", c, o, w + 40 * minute, "ACCEPTED",
                    refunded=AMOUNT - 500),
    ], Expected("dispute_lost", refunded=AMOUNT, dispute_status="lost", dispute_count=1))
    name = "paypal_dispute_lost_in_part_then_refund"  # the refund gives back the rest: nothing counted twice
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-10", c, o, w + minute),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-10", c, o, w + 30 * minute,
                    "RESOLVED_BUYER_FAVOUR", refunded=1200),
        _pp_refund(name, 3, "R-PP-L", c, o, w + 60 * minute, AMOUNT - 1200, "COMPLETED", AMOUNT - 1200),
    ], Expected("dispute_lost", refunded=AMOUNT - 1200, disputed=1200, dispute_status="lost", dispute_count=1))
    name = "paypal_partial_dispute_settled_by_refund"  # the claim is for one item: refund and dispute are one
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-13", c, o, w + minute, amount=800),
        _pp_refund(name, 2, "R-PP-P", c, o, w + 40 * minute, 800, "COMPLETED", 800),
        _pp_dispute(name, 3, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-13", c, o, w + 40 * minute, "ACCEPTED",
                    refunded=800, amount=800),
    ], Expected("dispute_lost", refunded=800, dispute_status="lost", dispute_count=1))
    name = "paypal_dispute_seen_only_resolved_after_its_refund"  # the opening was not delivered
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_refund(name, 1, "R-PP-Q", c, o, w + 40 * minute - timedelta(seconds=5), AMOUNT, "COMPLETED", AMOUNT),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-14", c, o, w + 40 * minute, "ACCEPTED",
                    refunded=AMOUNT),
    ], Expected("dispute_lost", refunded=AMOUNT, dispute_status="lost", dispute_count=1))
    name = "paypal_two_disputes_on_one_capture"  # each reversal settles its own dispute: one won, one lost
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-15", c, o, w + minute, stage="CHARGEBACK",
                    amount=1500),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.CREATED", "PP-D-16", c, o, w + 2 * minute, amount=500),
        _pp_refund(name, 3, "R-PP-R", c, o, w + 3 * minute, 500, "COMPLETED", 500,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
        _pp_dispute(name, 4, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-16", c, o, w + 10 * minute, "RESOLVED_BUYER_FAVOUR",
                    amount=500),
        _pp_refund(name, 5, "R-PP-S", c, o, w + 20 * minute, 1500, "COMPLETED", AMOUNT,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
        _pp_dispute(name, 6, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-15", c, o, w + 60 * minute,
                    "RESOLVED_SELLER_FAVOUR", stage="CHARGEBACK", amount=1500),
    ], Expected("dispute_lost", refunded=500, dispute_status="lost", dispute_count=2))
    name = "paypal_chargeback_reversed_and_lost"  # the reversal takes the disputed money: counted once
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-5", c, o, w + minute, stage="CHARGEBACK"),
        _pp_refund(name, 2, "R-PP-H", c, o, w + 2 * minute, AMOUNT, "COMPLETED", AMOUNT,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
        _pp_dispute(name, 3, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-5", c, o, w + 60 * minute,
                    "RESOLVED_BUYER_FAVOUR", stage="CHARGEBACK", refunded=AMOUNT),
    ], Expected("dispute_lost", refunded=AMOUNT, dispute_status="lost", dispute_count=1))
    name = "paypal_chargeback_reversed_and_won"  # PayPal returns what it took for a chargeback the merchant won
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-11", c, o, w + minute, stage="CHARGEBACK"),
        _pp_refund(name, 2, "R-PP-N", c, o, w + 2 * minute, AMOUNT, "COMPLETED", AMOUNT,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
        _pp_dispute(name, 3, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-11", c, o, w + 60 * minute,
                    "RESOLVED_SELLER_FAVOUR", stage="CHARGEBACK"),
    ], Expected("dispute_won", dispute_status="won", dispute_count=1))
    name = "paypal_chargeback_won_and_claim_settled_on_one_capture"  # the reversal comes back, the refund stays
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-17", c, o, w + minute, stage="CHARGEBACK",
                    amount=1000),
        _pp_refund(name, 2, "R-PP-T", c, o, w + 2 * minute, 1000, "COMPLETED", 1000,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
        _pp_dispute(name, 3, "CUSTOMER.DISPUTE.CREATED", "PP-D-18", c, o, w + 3 * minute, amount=1000),
        _pp_refund(name, 4, "R-PP-U", c, o, w + 10 * minute, 1000, "COMPLETED", AMOUNT),
        _pp_dispute(name, 5, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-18", c, o, w + 10 * minute, "ACCEPTED",
                    refunded=1000, amount=1000),
        _pp_dispute(name, 6, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-17", c, o, w + 60 * minute,
                    "RESOLVED_SELLER_FAVOUR", stage="CHARGEBACK", amount=1000),
    ], Expected("dispute_lost", refunded=1000, dispute_status="lost", dispute_count=2))
    day = timedelta(days=1)
    name = "paypal_claim_won_then_a_chargeback_weeks_later"  # the reversal is the new case's, not the old one's
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-19", c, o, w + minute),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-19", c, o, w + 3 * day, "RESOLVED_SELLER_FAVOUR"),
        _pp_refund(name, 3, "R-PP-V", c, o, w + 40 * day, AMOUNT, "COMPLETED", AMOUNT,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
        _pp_dispute(name, 4, "CUSTOMER.DISPUTE.CREATED", "PP-D-20", c, o, w + 40 * day + timedelta(seconds=10),
                    stage="CHARGEBACK"),
    ], Expected("disputed", refunded=AMOUNT, dispute_status="open", dispute_count=2))
    name = "paypal_claim_won_then_an_unrelated_reversal"  # no dispute was open: the reversal stays
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-21", c, o, w + minute),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-21", c, o, w + 3 * day, "RESOLVED_SELLER_FAVOUR"),
        _pp_refund(name, 3, "R-PP-W", c, o, w + 30 * day, AMOUNT, "COMPLETED", AMOUNT,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
    ], Expected("refunded", refunded=AMOUNT, dispute_status="won", dispute_count=1))
    name = "paypal_claim_open_and_a_chargeback_reversed_before_its_case"  # the reversal is the nearer case's
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-22", c, o, w + minute, amount=500),
        _pp_refund(name, 2, "R-PP-X", c, o, w + 10 * minute, 1500, "COMPLETED", 1500,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
        _pp_dispute(name, 3, "CUSTOMER.DISPUTE.CREATED", "PP-D-23", c, o, w + 10 * minute + timedelta(seconds=10),
                    stage="CHARGEBACK", amount=1500),
    ], Expected("disputed", refunded=1500, disputed=500, dispute_status="open", dispute_count=2))
    name = "paypal_dispute_reopened_then_settled_by_refund"  # the window closes at the last decision
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-24", c, o, w + minute, amount=800),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-24", c, o, w + 10 * minute, "RESOLVED_SELLER_FAVOUR",
                    amount=800),
        _pp_dispute(name, 3, "CUSTOMER.DISPUTE.UPDATED", "PP-D-24", c, o, w + 20 * minute, amount=800),
        _pp_refund(name, 4, "R-PP-Y", c, o, w + 30 * minute, 800, "COMPLETED", 800),
        _pp_dispute(name, 5, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-24", c, o, w + 30 * minute, "ACCEPTED",
                    refunded=800, amount=800),
    ], Expected("dispute_lost", refunded=800, dispute_status="lost", dispute_count=1))
    name = "paypal_chargeback_reversed_hours_before_its_case"  # outside the window, still the case's money
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_refund(name, 1, "R-PP-Z", c, o, w + 10 * day - 2 * 60 * minute, AMOUNT, "COMPLETED", AMOUNT,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.CREATED", "PP-D-25", c, o, w + 10 * day, stage="CHARGEBACK"),
        _pp_dispute(name, 3, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-25", c, o, w + 30 * day, "RESOLVED_BUYER_FAVOUR",
                    stage="CHARGEBACK"),
    ], Expected("dispute_lost", refunded=AMOUNT, dispute_status="lost", dispute_count=1))
    name = "paypal_claim_lost_then_reversed_later"  # PayPal takes the money after stamping the decision
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-26", c, o, w + 10 * day, amount=800),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-26", c, o, w + 20 * day, "RESOLVED_BUYER_FAVOUR",
                    amount=800),
        _pp_refund(name, 3, "R-PP-AA", c, o, w + 20 * day + 6 * minute, 800, "COMPLETED", 800,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
    ], Expected("dispute_lost", refunded=800, dispute_status="lost", dispute_count=1))
    name = "paypal_claim_and_chargeback_reversed_around_it"  # the reversal is the chargeback's: its amount
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_refund(name, 1, "R-PP-AB", c, o, w + 8 * day - 18 * minute, 200, "COMPLETED", 200,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.CREATED", "PP-D-27", c, o, w + 8 * day, amount=1600),
        _pp_dispute(name, 3, "CUSTOMER.DISPUTE.CREATED", "PP-D-28", c, o, w + 8 * day + 29 * minute,
                    stage="CHARGEBACK", amount=200),
        _pp_dispute(name, 4, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-27", c, o, w + 21 * day, "RESOLVED_SELLER_FAVOUR",
                    amount=1600),
    ], Expected("disputed", refunded=200, dispute_status="open", dispute_count=2))
    name = "paypal_dispute_seen_only_accepted_a_day_after_its_refund"  # its opening was never delivered
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_refund(name, 1, "R-PP-AC", c, o, w + 10 * day, 500, "COMPLETED", 500),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-29", c, o, w + 11 * day + 3 * 60 * minute,
                    "ACCEPTED", refunded=500, amount=500),
    ], Expected("dispute_lost", refunded=500, dispute_status="lost", dispute_count=1))
    name = "paypal_chargeback_reversed_before_its_dispute_and_won"  # PayPal reversed first, then opened the case
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_refund(name, 1, "R-PP-O", c, o, w + 2 * minute - timedelta(seconds=10), AMOUNT, "COMPLETED", AMOUNT,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.CREATED", "PP-D-12", c, o, w + 2 * minute, stage="CHARGEBACK"),
        _pp_dispute(name, 3, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-12", c, o, w + 30 * minute,
                    "RESOLVED_SELLER_FAVOUR", stage="CHARGEBACK"),
    ], Expected("dispute_won", dispute_status="won", dispute_count=1))
    name = "paypal_reversal_and_dispute_on_different_captures"  # a reversal nets only its own capture's dispute
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_capture(name, 1, f"{c}-2", o, w + minute),
        _pp_refund(name, 2, "R-PP-I", c, o, w + 2 * minute, AMOUNT, "COMPLETED", AMOUNT,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
        _pp_dispute(name, 3, "CUSTOMER.DISPUTE.CREATED", "PP-D-8", f"{c}-2", o, w + 3 * minute),
    ], Expected("disputed", captured=2 * AMOUNT, refunded=AMOUNT, disputed=AMOUNT, dispute_status="open",
                dispute_count=1))
    name = "paypal_dispute_lost_in_part"  # the outcome states what the buyer got back
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-6", c, o, w + minute),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-6", c, o, w + 30 * minute,
                    "RESOLVED_BUYER_FAVOUR", refunded=500),
    ], Expected("dispute_lost", disputed=500, dispute_status="lost", dispute_count=1))
    name = "paypal_dispute_paid_out_by_paypal"
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-7", c, o, w + minute),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-7", c, o, w + 30 * minute, "RESOLVED_WITH_PAYOUT"),
    ], Expected("dispute_won", dispute_status="won", dispute_count=1))
    name = "paypal_dispute_resolved_without_outcome"  # outcome NONE: over, nothing at stake, nothing taken
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-30", c, o, w + minute),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-30", c, o, w + 3 * day, "NONE"),
    ], Expected("succeeded", dispute_status="closed", dispute_count=1))
    name = "paypal_chargeback_reversed_and_resolved_without_outcome"  # what PayPal took stays taken
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-31", c, o, w + minute, stage="CHARGEBACK"),
        _pp_refund(name, 2, "R-PP-AD", c, o, w + 2 * minute, AMOUNT, "COMPLETED", AMOUNT,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
        _pp_dispute(name, 3, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-31", c, o, w + 3 * day, "NONE", stage="CHARGEBACK"),
    ], Expected("refunded", refunded=AMOUNT, dispute_status="closed", dispute_count=1))
    name = "paypal_chargeback_closed_then_a_claim_lost"  # the closed case's reversal is its own, not the claim's
    story(name, lambda o, c, w: [
        _pp_capture(name, 0, c, o, w),
        _pp_dispute(name, 1, "CUSTOMER.DISPUTE.CREATED", "PP-D-32", c, o, w + minute, stage="CHARGEBACK",
                    amount=1000),
        _pp_refund(name, 2, "R-PP-AE", c, o, w + 2 * minute, 1000, "COMPLETED", 1000,
                   event_type="PAYMENT.CAPTURE.REVERSED"),
        _pp_dispute(name, 3, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-32", c, o, w + 3 * day, "NONE", stage="CHARGEBACK",
                    amount=1000),
        _pp_dispute(name, 4, "CUSTOMER.DISPUTE.CREATED", "PP-D-33", c, o, w + 10 * day, amount=1000),
        _pp_dispute(name, 5, "CUSTOMER.DISPUTE.RESOLVED", "PP-D-33", c, o, w + 20 * day, "RESOLVED_BUYER_FAVOUR",
                    amount=1000),
    ], Expected("dispute_lost", refunded=1000, disputed=1000, dispute_status="lost", dispute_count=2))
    name = "paypal_authorize_capture_refund"
    story(name, lambda o, c, w: [
        _pp_order(name, 0, "CHECKOUT.ORDER.APPROVED", o, w),
        _pp_order(name, 1, "CHECKOUT.ORDER.COMPLETED", o, w + minute, authorization=("AU-PP-A", "CREATED")),
        _pp_authorization(name, 2, "PAYMENT.AUTHORIZATION.CREATED", "AU-PP-A", o, w + minute),
        _pp_capture(name, 3, c, o, w + 10 * minute, authorization="AU-PP-A"),
        _pp_refund(name, 4, "R-PP-F", c, o, w + 20 * minute, 500, "COMPLETED", 500),
    ], Expected("partially_refunded", refunded=500))
    name = "paypal_capture_names_only_its_authorization"  # resolved through the authorization, as its refund is
    story(name, lambda o, c, w: [
        _pp_order(name, 0, "CHECKOUT.ORDER.COMPLETED", o, w, authorization=("AU-PP-D", "CREATED")),
        _pp_authorization(name, 1, "PAYMENT.AUTHORIZATION.CREATED", "AU-PP-D", o, w),
        _pp_capture(name, 2, c, o, w + 10 * minute, authorization="AU-PP-D", up_only=True),
        _pp_refund(name, 3, "R-PP-M", c, o, w + 20 * minute, 500, "COMPLETED", 500),
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
    # name only the capture, delivered first; the dispute states the whole capture, but the buyer can claim
    # back only what the refund left
    name = "paypal_refund_and_dispute_before_capture"
    story(name, lambda o, c, w: [
        _pp_refund(name, 1, "R-PP-G", c, o, w + 2 * minute, 500, "COMPLETED", 500),
        _pp_dispute(name, 2, "CUSTOMER.DISPUTE.CREATED", "PP-D-4", c, o, w + 3 * minute),
        _pp_capture(name, 0, c, o, w),
    ], Expected("disputed", refunded=500, disputed=AMOUNT - 500, dispute_status="open", dispute_count=1))
    return stories
