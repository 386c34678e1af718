"""Money Stripe releases without capturing it: booked by Stripe as refunded, never a refund here.

A released hold says `refunded: true` with its whole amount in `amount_refunded`; a partial capture
counts the uncaptured rest there and (old API shape) lists a refund for it. The payloads are the
shared real-shaped ones with only the fields Stripe changes in those cases edited.
"""

from __future__ import annotations

from typing import Any

import pytest

from streams.normalize import normalize
from tests.streams.normalize.conftest import EnvelopeFactory
from tests.streams.normalize.support import doc


def _parts(event: Any) -> set[tuple[str, str, int, str]]:
    return {(p.kind, p.id, p.amount_minor, p.status) for p in event.parts}


def _released_hold(name: str) -> dict[str, Any]:
    body = doc(name)
    charge = body["data"]["object"]
    charge |= {"captured": False, "amount_captured": 0, "refunded": True, "amount_refunded": charge["amount"],
               "status": "succeeded"}
    return body


@pytest.mark.parametrize("old_shape", [True, False])
def test_a_released_hold_is_a_void_not_a_refund(envelope_factory: EnvelopeFactory, old_shape: bool) -> None:
    body = _released_hold("stripe_charge.refunded.json")
    charge = body["data"]["object"]
    if old_shape:
        charge["refunds"]["data"] = [{**charge["refunds"]["data"][0], "amount": charge["amount"]}]
    else:
        charge.pop("refunds", None)
    event = normalize(envelope_factory("stripe", body))
    assert (event.kind, event.status, event.refunded_total_minor) == ("payment", "canceled", None)
    assert _parts(event) == {("authorization", "", charge["amount"], "voided")}


def test_a_later_edit_of_a_released_hold_does_not_reopen_it(envelope_factory: EnvelopeFactory) -> None:
    event = normalize(envelope_factory("stripe", _released_hold("built/stripe_charge.updated.json")))
    assert event.status == "canceled"
    assert {p.status for p in event.parts} == {"voided"}


def test_an_uncaptured_charge_not_released_is_still_a_hold(envelope_factory: EnvelopeFactory) -> None:
    event = normalize(envelope_factory("stripe", doc("built/stripe_charge.succeeded.uncaptured.json")))
    assert event.status == "authorized"
    assert {(p.kind, p.status) for p in event.parts} == {("authorization", "open")}


def _partial_capture_refunded(listed: list[tuple[str, int, int]] | None) -> dict[str, Any]:
    """Captured 1500 of 2000 (the 500 rest released), then refunds: `listed` is (id, amount, created)."""
    body = doc("stripe_charge.refunded.json")
    charge = body["data"]["object"]
    charge |= {"amount": 2000, "amount_captured": 1500, "amount_refunded": 800, "refunded": False,
               "captured": True, "status": "succeeded"}
    if listed is None:
        charge.pop("refunds", None)
    else:
        template = charge["refunds"]["data"][0]
        charge["refunds"]["data"] = [{**template, "id": rid, "amount": amount, "created": created,
                                      "status": "succeeded"} for rid, amount, created in listed]
    return body


@pytest.mark.parametrize("listed", [
    [("re_refund", 300, 1_700_000_100), ("re_rest", 500, 1_700_000_000)],  # old shape: newest first
    None,  # new shape: no list
])
def test_a_partial_capture_total_leaves_out_the_released_rest(
        envelope_factory: EnvelopeFactory, listed: list[tuple[str, int, int]] | None) -> None:
    event = normalize(envelope_factory("stripe", _partial_capture_refunded(listed)))
    assert (event.status, event.amount_minor, event.refunded_total_minor) == ("partially_refunded", 300, 300)
    refunds = {part for part in _parts(event) if part[0] == "refund"}
    assert refunds == ({("refund", "re_refund", 300, "succeeded")} if listed else set())
    assert ("capture", "", 1500, "succeeded") in _parts(event)


def test_a_refund_equal_to_the_rest_is_kept_when_the_list_is_not_whole(envelope_factory: EnvelopeFactory) -> None:
    """Only a list that sums to the total surely holds the release; otherwise nothing is taken out of it."""
    body = _partial_capture_refunded([("re_refund", 500, 1_700_000_100)])
    body["data"]["object"]["amount_refunded"] = 1000  # 500 released + a 500 refund; the release is not listed
    event = normalize(envelope_factory("stripe", body))
    assert event.refunded_total_minor == 500
    assert ("refund", "re_refund", 500, "succeeded") in _parts(event)


def test_a_total_below_the_uncaptured_rest_is_all_refunds(envelope_factory: EnvelopeFactory) -> None:
    """A partial capture releases the whole rest at once, so a smaller total released nothing: a charge that
    may be captured again (multicapture) refunded 300 of the 1000 captured so far."""
    body = _partial_capture_refunded([("re_refund", 300, 1_700_000_100)])
    body["data"]["object"]["amount_captured"] = 1000  # 1000 uncaptured, not released
    body["data"]["object"]["amount_refunded"] = 300
    event = normalize(envelope_factory("stripe", body))
    assert (event.status, event.refunded_total_minor) == ("partially_refunded", 300)
    assert ("refund", "re_refund", 300, "succeeded") in _parts(event)


def test_a_refund_that_releases_an_expired_hold_is_a_void(envelope_factory: EnvelopeFactory) -> None:
    body = doc("built/stripe_refund.created.json")
    body["data"]["object"]["reason"] = "expired_uncaptured_charge"
    event = normalize(envelope_factory("stripe", body))
    amount = body["data"]["object"]["amount"]
    assert (event.kind, event.status) == ("authorization", "canceled")
    assert _parts(event) == {("authorization", "", amount, "voided")}


@pytest.mark.parametrize("name", ["stripe_charge.captured.json", "stripe_payment_intent.succeeded.json"])
def test_a_capture_closes_the_hold(envelope_factory: EnvelopeFactory, name: str) -> None:
    """Stripe captures a hold once and releases what it did not capture."""
    event = normalize(envelope_factory("stripe", doc(name)))
    assert ("authorization", "captured") in {(p.kind, p.status) for p in event.parts}


@pytest.mark.parametrize("own_status", ["warning_needs_response", "warning_under_review"])
def test_an_inquiry_is_a_dispute_that_moved_no_money(envelope_factory: EnvelopeFactory, own_status: str) -> None:
    body = doc("stripe_charge.dispute.created.json")
    body["data"]["object"]["status"] = own_status
    event = normalize(envelope_factory("stripe", body))
    assert event.status == "disputed"
    assert {(p.kind, p.status) for p in event.parts} == {("dispute", "inquiry")}
