"""The reconciliation fold agrees with the state machine on every story, in any order, with replays."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from paystream.dev.scenarios import scenario
from schemas.clock import to_epoch_ms
from schemas.records import PaymentEvent, PaymentState, WebhookEnvelope
from streams.normalize import normalize
from streams.reconcile.facts import ProviderFacts, fold
from streams.state import apply_event

START = datetime(2026, 11, 2, 9, tzinfo=UTC)


def story(rng: random.Random, name: str, provider: str) -> list[PaymentEvent]:
    events = []
    for delivery in scenario(name, provider, start=START + timedelta(minutes=rng.randrange(600)), rng=rng,
                             amount=rng.randint(100, 90_000), currency=rng.choice(["EUR", "USD", "JPY"])):
        envelope = WebhookEnvelope(envelope_id=str(uuid.uuid4()), provider=provider, source=provider,
                                   provider_event_id=delivery.event_id, event_type=delivery.event_type,
                                   received_at=START, verified_by="test", body=delivery.body,
                                   content_type="application/json")
        events.append(normalize(envelope))
    return events


def summary(state: PaymentState | ProviderFacts) -> tuple[object, ...]:
    return (state.status, state.amount_minor, state.captured_minor, state.refunded_minor, state.disputed_minor,
            state.currency)


@pytest.mark.parametrize("seed", range(6))
def test_fold_matches_apply_event(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(60):
        events = story(rng, rng.choice(["checkout", "refund", "dispute"]), rng.choice(["stripe", "paypal"]))
        rng.shuffle(events)
        events += rng.sample(events, rng.randrange(len(events)))  # replays, in any order
        state: PaymentState | None = None
        facts: ProviderFacts | None = None
        for event in events:
            state = apply_event(state, event) or state
            facts = fold(facts, event)
        assert state is not None and facts is not None
        assert summary(facts) == summary(state), [e.event_type for e in events]
        assert facts.first_ms == to_epoch_ms(state.created_at)


def test_events_of_kind_other_are_ignored() -> None:
    [event] = story(random.Random(1), "checkout", "stripe")[:1]
    other = PaymentEvent(**{**event.to_avro(), "kind": "other", "status": None})
    assert fold(None, other) is None
