"""Which payment an event belongs to, from its own payload (streams/identity.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.records import MoneyPart, PaymentEvent
from streams.identity import Identity, identify, payment_keys, resolved

T = datetime(2026, 11, 2, tzinfo=UTC)


def event(provider: str, event_type: str, kind: str, payment_id: str, key: str = "k", **related: str) -> PaymentEvent:
    return PaymentEvent(event_key=f"{provider}:{key}", payment_id=payment_id, provider=provider,
                        event_type=event_type, kind=kind, occurred_at=T, envelope_id="e", received_at=T,
                        related_ids=related)


@pytest.mark.parametrize(("given", "expected"), [
    (event("stripe", "payment_intent.succeeded", "payment", "pi_1", payment_intent="pi_1", charge="ch_1"),
     Identity("pi_1", links=("ch_1",))),
    (event("stripe", "charge.succeeded", "payment", "ch_9", charge="ch_9"), Identity("ch_9", links=("ch_9",))),
    (event("stripe", "charge.refunded", "refund", "ch_9", charge="ch_9"), Identity("ch_9", links=("ch_9",))),
    (event("stripe", "charge.dispute.created", "dispute", "ch_1", charge="ch_1"), Identity(None, alias="ch_1")),
    (event("stripe", "charge.refund.updated", "refund", "ch_1", charge="ch_1"), Identity(None, alias="ch_1")),
    (event("stripe", "refund.created", "refund", "pi_1", payment_intent="pi_1", charge="ch_1"),
     Identity("pi_1", links=("ch_1",))),
    (event("paypal", "PAYMENT.CAPTURE.COMPLETED", "payment", "O1", order="O1", capture="C1", authorization="A1"),
     Identity("O1", links=("C1", "A1"))),
    (event("paypal", "PAYMENT.CAPTURE.COMPLETED", "payment", "C2", capture="C2"), Identity("C2", links=("C2",))),
    (event("paypal", "PAYMENT.CAPTURE.COMPLETED", "payment", "C3", capture="C3", authorization="A3"),
     Identity(None, alias="A3", links=("C3", "A3"))),
    (event("paypal", "PAYMENT.CAPTURE.REFUNDED", "refund", "C1", capture="C1", refund="R1"),
     Identity(None, alias="C1")),
    (event("paypal", "CUSTOMER.DISPUTE.CREATED", "dispute", "C1"), Identity(None, alias="C1")),
    (event("paypal", "PAYMENT.SALE.REFUNDED", "refund", "S1", sale="S1"), Identity("S1", links=("S1",))),
    (event("paypal", "BILLING.SUBSCRIPTION.CREATED", "other", "I-1"), Identity("I-1")),
    (event("standard", "invoice.paid", "payment", "inv_1"), Identity("inv_1")),
])
def test_identify(given: PaymentEvent, expected: Identity) -> None:
    assert identify(given) == expected


def test_an_order_links_every_capture_and_authorization_it_lists() -> None:
    order = event("paypal", "CHECKOUT.ORDER.COMPLETED", "payment", "O1", order="O1", capture="C1")
    order.parts = [MoneyPart("capture", "C1", 5, "succeeded"), MoneyPart("capture", "C2", 5, "succeeded"),
                   MoneyPart("authorization", "A1", 10, "captured")]
    assert identify(order) == Identity("O1", links=("C1", "C2", "A1"))


def test_a_resolved_event_is_not_resolved_again() -> None:
    dispute = event("stripe", "charge.dispute.created", "dispute", "ch_1", charge="ch_1")
    again = resolved(dispute, "pi_1")
    assert (again.payment_id, identify(again)) == ("pi_1", Identity("pi_1"))


def test_payment_keys_resolve_aliases_whichever_comes_first_and_keep_unlinked_ones() -> None:
    dispute = event("stripe", "charge.dispute.created", "dispute", "ch_1", key="e1", charge="ch_1")
    charge = event("stripe", "charge.succeeded", "payment", "pi_1", key="e2", payment_intent="pi_1", charge="ch_1")
    orphan = event("stripe", "charge.dispute.created", "dispute", "ch_7", key="e3", charge="ch_7")
    assert payment_keys([dispute, orphan, charge]) == {
        "stripe:e1": "stripe:pi_1", "stripe:e2": "stripe:pi_1", "stripe:e3": "stripe:ch_7"}


def test_a_capture_resolved_through_its_authorization_still_links_itself() -> None:
    """Its refunds name only the capture: the capture's id must reach the order too."""
    capture = event("paypal", "PAYMENT.CAPTURE.COMPLETED", "payment", "C3", capture="C3", authorization="A3")
    assert identify(resolved(capture, "O3")) == Identity("O3", links=("C3",))


def test_payment_keys_follow_a_refund_through_its_capture_to_the_authorizations_order() -> None:
    refund = event("paypal", "PAYMENT.CAPTURE.REFUNDED", "refund", "C3", key="e1", capture="C3", refund="R3")
    capture = event("paypal", "PAYMENT.CAPTURE.COMPLETED", "payment", "C3", key="e2", capture="C3",
                    authorization="A3")
    authorization = event("paypal", "PAYMENT.AUTHORIZATION.CREATED", "authorization", "O3", key="e3",
                          order="O3", authorization="A3")
    assert payment_keys([refund, capture, authorization]) == {
        "paypal:e1": "paypal:O3", "paypal:e2": "paypal:O3", "paypal:e3": "paypal:O3"}
    # no event ever names the authorization's order: both are released under the authorization
    assert payment_keys([refund, capture]) == {"paypal:e1": "paypal:A3", "paypal:e2": "paypal:A3"}
