"""Money by component: every provider shape folds to the right `payments` row, in any order.

The stories (`paystream/dev/stories/`) cover both Stripe API shapes and PayPal v2: partial
refunds, refunds that fail or are canceled, disputes lost and won around plain payment events,
refunds during a dispute, PayPal authorize-then-capture and voided authorizations, and refunds
or disputes that name only the charge/capture and arrive before the payment's own event.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paystream.dev.stories import Story, all_stories
from schemas.records import PaymentEvent, PaymentState, WebhookEnvelope
from streams.identity import identify, payment_keys, resolved
from streams.normalize import normalize
from streams.state import apply_event, fold_all

START = datetime(2026, 11, 2, tzinfo=UTC)
STORIES = all_stories(START)
RECEIVED = datetime(2026, 11, 3, tzinfo=UTC)


def events_of(story: Story, order: list[int] | None = None) -> list[PaymentEvent]:
    """The story's events, received by the ingress in `order` (default: as the provider sent them)."""
    deliveries = story.deliveries if order is None else [story.deliveries[i] for i in order]
    out = []
    for n, d in enumerate(deliveries):
        envelope = WebhookEnvelope(envelope_id=f"env-{d.event_id}", provider=d.provider, source=d.provider,
                                   provider_event_id=d.event_id, event_type=d.event_type,
                                   received_at=RECEIVED + timedelta(seconds=n), verified_by="t", body=d.body,
                                   content_type="application/json")
        out.append(normalize(envelope))
    return out


def row(state: PaymentState) -> tuple[object, ...]:
    return (state.status, state.amount_minor, state.captured_minor, state.refunded_minor, state.refund_pending_minor,
            state.authorized_minor, state.disputed_minor, state.dispute_status, state.dispute_count)


def comparable(state: PaymentState) -> dict[str, Any]:
    data = state.to_avro()
    data.pop("traceparent")
    return data


def incremental(events: list[PaymentEvent]) -> dict[str, PaymentState]:
    """`apply_event` one at a time, keyed as the worker keys them once identities are known."""
    keys = payment_keys(events)
    states: dict[str, PaymentState] = {}
    for event in events:
        key = keys[event.event_key]
        keyed = event
        if identify(event).payment is None and key != event.payment_key:
            keyed = resolved(event, key.split(":", 1)[1])
        new = apply_event(states.get(key), keyed)
        if new is not None:
            states[key] = new
    return states


@pytest.mark.parametrize("story", STORIES, ids=[s.name for s in STORIES])
def test_each_story_is_one_payment_with_the_right_money(story: Story) -> None:
    states = fold_all(events_of(story))
    assert list(states) == [story.payment_key], "one payment, under its canonical id"
    assert row(states[story.payment_key]) == story.expected.row()


@pytest.mark.parametrize("story", STORIES, ids=[s.name for s in STORIES])
def test_any_processing_order_gives_the_same_state(story: Story) -> None:
    """Every permutation (up to 6 events; a sample beyond), with replays, equals the one-shot fold."""
    events = events_of(story)
    reference = {k: comparable(v) for k, v in fold_all(events).items()}
    orders = list(itertools.permutations(events))
    if len(orders) > 720:
        orders = random.Random(story.name).sample(orders, 720)
    for order in orders:
        replayed = [*order, *order[: len(order) // 2]]
        assert {k: comparable(v) for k, v in incremental(replayed).items()} == reference


@pytest.mark.parametrize("story", STORIES, ids=[s.name for s in STORIES])
def test_the_delivery_order_changes_no_money(story: Story) -> None:
    """Delivered in any order, the money and status are the same; only the out-of-order record differs."""
    n = len(story.deliveries)
    for order in itertools.islice(itertools.permutations(range(n)), 120):
        states = fold_all(events_of(story, list(order)))
        assert row(states[story.payment_key]) == story.expected.row()


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_interleaved_stories_with_duplicates_fold_like_each_alone(data: st.DataObject) -> None:
    chosen = data.draw(st.lists(st.sampled_from(STORIES), min_size=2, max_size=5, unique_by=lambda s: s.name))
    events = [e for story in chosen for e in events_of(story)]
    stream = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=6))))
    states = incremental(stream)
    assert {k: row(v) for k, v in states.items()} == {s.payment_key: s.expected.row() for s in chosen}


def test_a_pending_refund_is_shown_apart_and_counts_once_it_succeeds() -> None:
    story = next(s for s in STORIES if s.name == "stripe_new_refund_pending")
    events = events_of(story)
    pending = fold_all(events)[story.payment_key]
    assert (pending.status, pending.refunded_minor, pending.refund_pending_minor) == ("succeeded", 0, 700)
    done = replace(events[-1], event_key="stripe:evt_done", occurred_at=events[-1].occurred_at + timedelta(hours=1),
                   parts=[replace(events[-1].parts[0], status="succeeded")])
    after = fold_all([*events, done])[story.payment_key]
    assert (after.status, after.refunded_minor, after.refund_pending_minor) == ("partially_refunded", 700, 0)
    assert after.refund_states == {"re_h": "succeeded"}
