"""The state machine: order-independent, replay-safe, and right about money."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from paystream.dev.scenarios import (
    Delivery,
    paypal_capture,
    paypal_refund,
    scenario,
    stripe_dispute,
    stripe_payment_intent,
    stripe_refund,
)
from schemas.clock import now_ms
from schemas.records import PaymentEvent, PaymentState, WebhookEnvelope
from streams.normalize import normalize
from streams.state import FLAG_OUT_OF_ORDER, apply_event


def to_event(delivery: Delivery) -> PaymentEvent:
    envelope = WebhookEnvelope(envelope_id="e", provider=delivery.provider, source=delivery.provider,
                               provider_event_id=delivery.event_id, event_type=delivery.event_type,
                               received_at=now_ms(), verified_by="t", body=delivery.body,
                               content_type="application/json")
    return normalize(envelope)


def run(events: list[PaymentEvent]) -> PaymentState:
    state: PaymentState | None = None
    for event in events:
        state = apply_event(state, event) or state
    assert state is not None
    return state


def summary(state: PaymentState) -> tuple[object, ...]:
    return (state.status, state.amount_minor, state.captured_minor, state.refunded_minor, state.disputed_minor,
            state.currency, state.version, state.created_at, state.updated_at)


T0 = 1_790_000_000


def card_payment(amount: int = 2000, currency: str = "USD") -> list[PaymentEvent]:
    deliveries = [
        stripe_payment_intent("payment_intent.created", "pi_1", amount=amount, currency=currency, created=T0),
        stripe_payment_intent("payment_intent.requires_action", "pi_1", amount=amount, currency=currency,
                              created=T0 + 5),
        stripe_payment_intent("payment_intent.processing", "pi_1", amount=amount, currency=currency, created=T0 + 9),
        stripe_payment_intent("payment_intent.succeeded", "pi_1", amount=amount, currency=currency, created=T0 + 12,
                              charge="ch_1"),
    ]
    return [to_event(d) for d in deliveries]


def test_in_order_payment_succeeds() -> None:
    state = run(card_payment())
    assert (state.status, state.amount_minor, state.captured_minor, state.version) == ("succeeded", 2000, 2000, 4)
    assert FLAG_OUT_OF_ORDER not in state.flags


def test_shuffled_with_duplicates_ends_succeeded_with_the_right_amount() -> None:
    events = card_payment()
    delivered = events * 3
    random.Random(7).shuffle(delivered)
    state = run(delivered)
    assert (state.status, state.amount_minor, state.captured_minor, state.version) == ("succeeded", 2000, 2000, 4)
    assert len(state.history) == 4


def delivered_in(order: list[PaymentEvent]) -> list[PaymentEvent]:
    """The events as the provider delivered them: `received_at` follows the list's order."""
    first = order[0].received_at
    return [replace(event, received_at=first + timedelta(seconds=i)) for i, event in enumerate(order)]


def test_a_late_earlier_event_never_undoes_a_later_one() -> None:
    created, _action, processing, succeeded = card_payment()
    late = delivered_in([succeeded, processing, created])
    for order in ([0, 1, 2], [2, 1, 0], [1, 0, 2]):  # processed in any order: the delivery order decides
        state = run([late[i] for i in order])
        assert state.status == "succeeded"
        assert sorted(state.ignored_events) == sorted([processing.event_key, created.event_key])
        assert FLAG_OUT_OF_ORDER in state.flags


def test_replay_of_an_applied_event_changes_nothing() -> None:
    events = card_payment()
    state = run(events)
    assert apply_event(state, events[1]) is None


def refunds(order: list[int]) -> PaymentState:
    events = card_payment()
    parts = [
        to_event(stripe_refund("refund.created", "re_1", "pi_1", "ch_1", amount=500, currency="USD",
                               created=T0 + 100)),
        to_event(stripe_refund("refund.created", "re_2", "pi_1", "ch_1", amount=1500, currency="USD",
                               created=T0 + 200)),
    ]
    return run(events + [parts[i] for i in order])


def test_partial_then_full_refund_in_either_order() -> None:
    for order in ([0], [0, 1], [1, 0]):
        state = refunds(order)
        expected = ("partially_refunded", 500) if order == [0] else ("refunded", 2000)
        assert (state.status, state.refunded_minor) == expected, order


def test_refund_events_for_the_same_refund_count_once() -> None:
    events = card_payment()
    created = to_event(stripe_refund("refund.created", "re_1", "pi_1", "ch_1", amount=500, currency="USD",
                                     created=T0 + 100))
    updated = to_event(stripe_refund("refund.updated", "re_1", "pi_1", "ch_1", amount=500, currency="USD",
                                     created=T0 + 150))
    state = run([*events, created, updated])
    assert (state.status, state.refunded_minor) == ("partially_refunded", 500)


def test_failed_refund_moves_no_money() -> None:
    events = card_payment()
    failed = to_event(stripe_refund("refund.failed", "re_9", "pi_1", "ch_1", amount=2000, currency="USD",
                                    created=T0 + 100, status="failed"))
    state = run([*events, failed])
    assert (state.status, state.refunded_minor, state.version) == ("succeeded", 0, 5)


def test_dispute_lost() -> None:
    events = card_payment()
    opened = to_event(stripe_dispute("charge.dispute.created", "dp_1", "pi_1", "ch_1", amount=2000, currency="USD",
                                     created=T0 + 1000, status="needs_response"))
    lost = to_event(stripe_dispute("charge.dispute.closed", "dp_1", "pi_1", "ch_1", amount=2000, currency="USD",
                                   created=T0 + 5000, status="lost"))
    for order in ([opened, lost], [lost, opened]):
        state = run(events + order)
        assert (state.status, state.disputed_minor) == ("dispute_lost", 2000)


def test_zero_decimal_currency() -> None:
    state = run(card_payment(amount=1500, currency="JPY"))
    assert (state.currency, state.amount_minor, state.captured_minor) == ("JPY", 1500, 1500)


def test_paypal_capture_then_refund_then_reversal() -> None:
    at = datetime(2026, 11, 1, 12, tzinfo=UTC)
    steps = [
        paypal_capture("PAYMENT.CAPTURE.COMPLETED", "CAP1", order="ORD1", amount=3000, currency="EUR", when=at),
        paypal_refund("PAYMENT.CAPTURE.REFUNDED", "REF1", "CAP1", amount=1000, total_refunded=1000, currency="EUR",
                      when=at + timedelta(hours=1)),
        paypal_refund("PAYMENT.CAPTURE.REVERSED", "REF2", "CAP1", amount=2000, total_refunded=3000, currency="EUR",
                      when=at + timedelta(hours=2)),
    ]
    events = [to_event(s) for s in steps]
    assert run(events[:2]).status == "partially_refunded"
    state = run(events)
    assert (state.status, state.refunded_minor, state.captured_minor, state.currency) == ("refunded", 3000, 3000,
                                                                                         "EUR")


def test_other_kind_changes_nothing() -> None:
    events = card_payment()
    other = PaymentEvent(event_key="stripe:evt_o", payment_id="pi_1", provider="stripe", event_type="customer.x",
                         kind="other", occurred_at=events[0].occurred_at, envelope_id="e",
                         received_at=events[0].received_at)
    assert apply_event(run(events), other) is None
    assert apply_event(None, other) is None


STORIES = [(name, provider) for name in ("checkout", "refund", "dispute") for provider in ("stripe", "paypal")]


@settings(max_examples=200, deadline=None)
@given(story=st.sampled_from(STORIES), seed=st.integers(0, 2**32), copies=st.integers(1, 3))
def test_final_state_does_not_depend_on_delivery_order(story: tuple[str, str], seed: int, copies: int) -> None:
    rng = random.Random(seed)
    events = [to_event(d) for d in scenario(story[0], story[1], rng=random.Random(seed),
                                            start=datetime(2026, 11, 1, tzinfo=UTC))]
    reference = summary(run(events))
    delivered = events * copies
    rng.shuffle(delivered)
    assert summary(run(delivered)) == reference
