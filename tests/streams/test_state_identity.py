"""The worker's incremental identity resolution reaches the reference in every arrival order.

In-process with the pipeline's real state stage (`tests/streams/memory.py` stands in for the broker and
RocksDB), one delivery per batch so holds persist between batches. The story that needs a chain of
links: an older-shape PayPal capture names its parent only through `links[rel=up]` → authorization, and its
refund names only the capture, so the refund resolves through the capture, which resolves through the
authorization, which the order's events link to the order.
"""

from __future__ import annotations

import itertools

import pytest

from paystream.dev.stories import Story, all_stories
from schemas.serde import payment_event_serde
from tests.streams.memory import Producer
from tests.streams.test_money import START, row
from tests.streams.test_state_takeover import EVENTS, Cluster, local_states

CHAINED = [s for s in all_stories(START) if s.name in (
    "paypal_capture_names_only_its_authorization", "paypal_refund_and_dispute_before_capture",
    "stripe_dispute_before_payment")]


@pytest.mark.parametrize("story", CHAINED, ids=[s.name for s in CHAINED])
async def test_every_arrival_order_lands_on_one_payment_with_the_right_money(story: Story) -> None:
    serde = payment_event_serde()
    for order in itertools.permutations(story.deliveries):
        cluster = Cluster(Producer())
        worker = cluster.worker()
        for delivery in order:
            await cluster.publish([delivery])
            await cluster.run(worker)
        states = local_states(worker.states)
        assert list(states) == [story.payment_key], [d.event_type for d in order]
        assert row(states[story.payment_key]) == story.expected.row(), [d.event_type for d in order]
        emitted = {serde.decode(r.value).payment_key for r in cluster.producer.logs[EVENTS]}
        assert emitted == {story.payment_key}, "every event is emitted under the payment, none under an alias"

