"""PayPal disputes and reversals: the money a dispute takes is counted once, at what PayPal settled.

A chargeback reaches the merchant twice: the dispute, and PAYMENT.CAPTURE.REVERSED taking the capture
back. The reversal is the money; the dispute says why. A resolution states the amount the buyer got
back in `dispute_outcome.amount_refunded`.
"""

from __future__ import annotations

import pytest

from streams.normalize import NormalizeError, normalize
from tests.streams.normalize.conftest import EnvelopeFactory
from tests.streams.normalize.support import doc


def test_a_reversal_is_a_reversal_part_and_a_refund_a_refund_part(envelope_factory: EnvelopeFactory) -> None:
    reversed_ = normalize(envelope_factory("paypal", doc("paypal_PAYMENT.CAPTURE.REVERSED.json")))
    refunded = normalize(envelope_factory("paypal", doc("paypal_PAYMENT.CAPTURE.REFUNDED.json")))
    assert [(p.kind, p.id, p.amount_minor, p.status) for p in reversed_.parts] == [
        ("reversal", "09E71677NS257044M", 251, "succeeded")]
    assert [p.kind for p in refunded.parts] == ["refund"]


def _resolved(outcome: str, refunded: dict[str, str] | None) -> dict[str, object]:
    body = doc("built/paypal_CUSTOMER.DISPUTE.RESOLVED.json")
    body["resource"]["dispute_outcome"] = {"outcome_code": outcome,
                                           **({"amount_refunded": refunded} if refunded else {})}
    return body


def test_a_lost_dispute_counts_what_the_buyer_got_back(envelope_factory: EnvelopeFactory) -> None:
    body = _resolved("RESOLVED_BUYER_FAVOUR", None)
    currency = body["resource"]["dispute_amount"]["currency_code"]  # type: ignore[index]
    whole = normalize(envelope_factory("paypal", body))
    part = normalize(envelope_factory("paypal", _resolved("RESOLVED_BUYER_FAVOUR",
                                                          {"currency_code": currency, "value": "1.00"})))
    assert [(p.kind, p.status) for p in part.parts] == [("dispute", "lost")]
    assert (part.amount_minor, part.parts[0].amount_minor) == (100, 100)
    assert whole.parts[0].amount_minor == whole.amount_minor > 100


def test_a_won_dispute_ignores_the_outcome_amount(envelope_factory: EnvelopeFactory) -> None:
    body = _resolved("RESOLVED_WITH_PAYOUT", {"currency_code": "USD", "value": "1.00"})
    event = normalize(envelope_factory("paypal", body))
    assert (event.status, [p.status for p in event.parts]) == ("dispute_won", ["won"])


def test_an_outcome_amount_in_another_currency_is_refused(envelope_factory: EnvelopeFactory) -> None:
    body = _resolved("RESOLVED_BUYER_FAVOUR", {"currency_code": "EUR", "value": "1.00"})
    body["resource"]["dispute_amount"]["currency_code"] = "USD"  # type: ignore[index]
    with pytest.raises(NormalizeError) as caught:
        normalize(envelope_factory("paypal", body))
    assert caught.value.reason == "currency_mismatch"


@pytest.mark.parametrize("outcome", ["NONE", "SOME_CODE_PAYPAL_ADDS_LATER"])
def test_a_resolution_that_states_no_known_outcome_closes_the_dispute(envelope_factory: EnvelopeFactory,
                                                                      outcome: str) -> None:
    """The case is over: nothing stays at stake, and no payment status is claimed (money PayPal took comes as
    its reversal)."""
    event = normalize(envelope_factory("paypal", _resolved(outcome, None)))
    assert event.status is None
    assert [(p.kind, p.status, p.amount_minor) for p in event.parts] == [("dispute", "closed", event.amount_minor)]
