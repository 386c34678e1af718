"""The money stories through the real pipeline: webhooks → worker → sink, on SQLite and PostgreSQL.

Every story (both Stripe API shapes, PayPal v2; see `paystream/dev/stories/`) is published as
raw webhooks in the order the provider sent them — refunds and disputes that name only a charge
or capture first where the story says so — with the merchant's ledger entry for each payment.
The `payments` rows, the `payment_events` rows and each story's reconciliation window must say
exactly what happened: one payment per purchase, under its canonical id, with the right money.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.runner import SinkRunner
from paystream.core.settings import Settings
from paystream.dev.scenarios import stripe_payment_intent
from paystream.dev.stories import CURRENCY, all_stories
from schemas.records import LedgerEntry
from schemas.serde import ledger_serde
from schemas.topics import TopicCatalog, partition_for
from tests.fixtures.databases import Db
from tests.fixtures.streams import EnvelopeFactory, WorkerProcess

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]

START = datetime(2026, 11, 2, tzinfo=UTC)


def sweep(partitions: int) -> list[Any]:
    """One payment per partition two days later, so every partition's event time closes the story windows."""
    t = int((START + timedelta(days=2)).timestamp())
    found: dict[int, Any] = {}
    n = 0
    while len(found) < partitions:
        pi = f"pi_sweep_{n}"
        found.setdefault(partition_for(f"stripe:{pi}".encode(), partitions),
                         stripe_payment_intent("payment_intent.created", pi, amount=1, currency="USD", created=t))
        n += 1
    return list(found.values())


async def until(check: Callable[[], bool], what: str, timeout_s: float = 150) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await asyncio.to_thread(check):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.5)


def payments(db: Db) -> dict[str, tuple[object, ...]]:
    rows = db.rows("SELECT provider, payment_id, status, amount_minor, captured_minor, refunded_minor, "
                   "refund_pending_minor, authorized_minor, disputed_minor, dispute_status, dispute_count "
                   "FROM payments")
    return {f"{r[0]}:{r[1]}": tuple(r[2:]) for r in rows}


def windows(db: Db) -> dict[tuple[str, int], tuple[Any, ...]]:
    rows = db.rows("SELECT provider, window_start_ms, captured_minor, refunded_minor, provider_confirmed_minor, "
                   "ledger_expected_minor, missing_at_provider, unexpected_at_provider, amount_mismatches "
                   "FROM reconciliation_windows")
    return {(r[0], int(r[1])): tuple(r[2:6]) + tuple(json.loads(v) if isinstance(v, str) else v for v in r[6:])
            for r in rows}


async def test_every_money_story_lands_right_in_payments_and_reconciliation(
        worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory, publish_raw: Any,
        producer_factory: Any, topics: TopicCatalog, kafka: Any, sink_backend: Db) -> None:
    stories = all_stories(START)
    worker_factory(PAYSTREAM_RECON_GRACE_S="60", PAYSTREAM_RECON_IDLE_S="5")
    producer = await producer_factory()
    serde = ledger_serde()
    for story in stories:
        entry = LedgerEntry(payment_id=story.payment_id, provider=story.provider, amount_minor=story.booked_minor,
                            currency=CURRENCY, expected_at=story.at, merchant_reference=f"order-{story.name}")
        await producer.send_and_wait(topics.ledger, serde.encode(entry), key=entry.payment_key.encode())
    # stories interleaved; each story's deliveries keep the provider's order (alias-only events first)
    queues = [list(s.deliveries) for s in stories]
    rng = random.Random(13)
    ordered = []
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        ordered.append(queue.pop(0))
    await publish_raw(*(envelope_factory(d.body, provider=d.provider) for d in ordered))
    await publish_raw(*(envelope_factory(d.body, provider=d.provider) for d in sweep(topics.partitions)))

    settings = Settings(kafka_bootstrap=kafka.bootstrap, topic_prefix=topics.prefix, partitions=topics.partitions,
                        sink_url=sink_backend.url, sink_metrics_port=0, embedded_broker=kafka.is_embedded,
                        sink_batch_size=500, sink_batch_ms=50)
    runner = SinkRunner(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        expected = {s.payment_key: s.expected.row() for s in stories}
        await until(lambda: {k: v for k, v in payments(sink_backend).items() if k in expected} == expected,
                    "every story's payments row")
        story_windows = {(s.provider, int(s.at.replace(minute=0).timestamp() * 1000)): s for s in stories}
        await until(lambda: story_windows.keys() <= windows(sink_backend).keys(), "every story's window")
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)

    found = payments(sink_backend)
    assert {k: found[k] for k in expected} == expected
    aliases = {k for k in found if k.split(":", 1)[1].startswith(("ch_", "C-", "AU-"))}
    assert not aliases, f"a charge/capture/authorization became a payment of its own: {aliases}"
    events = sink_backend.rows("SELECT provider, payment_id, event_key FROM payment_events")
    story_events = {f"{s.provider}:{d.event_id}": s for s in stories for d in s.deliveries}
    landed = {key: f"{provider}:{pid}" for provider, pid, key in events if key in story_events}
    assert landed == {key: s.payment_key for key, s in story_events.items()}, "every event once, on its payment"

    for (provider, start_ms), story in story_windows.items():
        captured, refunded, confirmed, ledger, missing, unexpected, mismatches = windows(sink_backend)[
            (provider, start_ms)]
        assert (ledger, unexpected, mismatches) == (story.booked_minor, [], []), story.name
        if story.confirmed:
            assert (missing, confirmed, captured, refunded) == (
                [], story.expected.captured, story.expected.captured, story.expected.refunded), story.name
        else:
            assert (missing, confirmed) == ([story.payment_id], 0), story.name
