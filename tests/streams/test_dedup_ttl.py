"""Dedup entries expire in event time (never wall time), and 100 concurrent copies make one event."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx

from ingress.signing import sign_stripe
from paystream.dev.scenarios import stripe_payment_intent
from schemas.serde import payment_event_serde
from streams.dedup import Sighting, Verdict, is_expired, judge
from streams.pipeline import partition_for
from tests.fixtures.ingress import STRIPE_SECRET
from tests.fixtures.kafka import drain
from tests.fixtures.streams import EnvelopeFactory


def test_verdicts() -> None:
    seen = Sighting(1, 40, b"d" * 16, 1000, 2000)
    assert judge(None, 1, 40, b"d" * 16) is Verdict.NEW
    assert judge(seen, 1, 40, b"d" * 16) is Verdict.REPLAY
    assert judge(seen, 1, 41, b"d" * 16) is Verdict.DUPLICATE
    assert judge(seen, 2, 40, b"d" * 16) is Verdict.DUPLICATE
    assert judge(seen, 1, 41, b"x" * 16) is Verdict.CONFLICT
    assert Sighting.unpack(seen.pack()) == seen and len(seen.pack()) == 44
    assert not is_expired(seen, 2000 + 3600_000, 3600)
    assert is_expired(seen, 2001 + 3600_000, 3600)


async def test_entries_expire_in_event_time_as_batches_go_by(
        worker_factory: Any, envelope_factory: EnvelopeFactory, publish_raw: Any, topics: Any,
        consumer_factory: Any) -> None:
    worker = worker_factory()
    old = envelope_factory(stripe_payment_intent("payment_intent.created", "pi_ttl", amount=100, currency="USD",
                                                 created=1_790_000_000).body)
    await publish_raw(old)
    await drain(await consumer_factory(topics.events), expected=1, timeout_s=60)
    # a retry of the old event soon after is a duplicate
    await publish_raw(envelope_factory(old.body))
    # ... but once the partition's event time is past the TTL, the old entry is swept (event time is
    # per raw partition, so the later event must share the old one's partition)
    partition = partition_for(old.key.encode(), topics.partitions)
    event_id = next(f"evt_later_{n}" for n in range(1000)
                    if partition_for(f"stripe:evt_later_{n}".encode(), topics.partitions) == partition)
    later = envelope_factory(stripe_payment_intent("payment_intent.created", "pi_ttl_2", amount=100,
                                                   currency="USD", created=1_790_000_000, event_id=event_id).body)
    later.received_at = old.received_at + timedelta(seconds=302_400 + 60)
    await publish_raw(later)
    for _ in range(120):
        stats = worker.get("/dedup/stats").json()
        if stats["expired"] >= 1:
            break
        await asyncio.sleep(0.25)
    assert stats["expired"] >= 1 and stats["duplicates"] == 1, stats
    # the same event id now counts as new again: it is beyond the providers' retry horizon
    await publish_raw(envelope_factory(old.body))
    events = await drain(await consumer_factory(topics.events), expected=3, idle_s=2, timeout_s=60)
    keys = [payment_event_serde().decode(r.value).event_key for r in events]
    assert keys.count(old.key) == 2 and len(keys) == 3


async def test_one_hundred_concurrent_copies_through_the_ingress_make_one_event(
        worker_factory: Any, ingress_factory: Any, ingress_settings_factory: Any, topics: Any,
        consumer_factory: Any) -> None:
    worker = worker_factory()
    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix))
    delivery = stripe_payment_intent("payment_intent.succeeded", "pi_hundred", amount=777, currency="USD",
                                     created=int(time.time()), charge="ch_hundred")

    async def post(client: httpx.AsyncClient) -> int:
        response = await client.post(f"{server.url}/webhooks/stripe", content=delivery.body, headers={
            "content-type": "application/json",
            "stripe-signature": sign_stripe(delivery.body, STRIPE_SECRET, int(time.time()))})
        return response.status_code

    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        statuses = await asyncio.gather(*(post(client) for _ in range(100)))
    assert statuses == [200] * 100
    raw = await drain(await consumer_factory(topics.raw), expected=100, timeout_s=60)
    assert len(raw) == 100
    events = await drain(await consumer_factory(topics.events), expected=1, idle_s=3, timeout_s=60)
    assert len(events) == 1
    for _ in range(60):
        stats = worker.get("/dedup/stats").json()
        if stats["duplicates"] == 99:
            break
        await asyncio.sleep(0.25)
    assert (stats["new"], stats["duplicates"]) == (1, 99)
