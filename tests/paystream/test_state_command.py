"""`paystream state rebuild`: a state that missed an event gets it back from payments.events.v1."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from paystream.dev.scenarios import stripe_payment_intent, stripe_refund
from schemas.records import PaymentState
from schemas.serde import payment_event_serde, payment_state_serde
from schemas.topics import TopicCatalog, partition_for
from streams.fold import FOLD_REVISION
from streams.normalize import normalize
from tests.fixtures.kafka import drain
from tests.fixtures.streams import EnvelopeFactory, WorkerProcess

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]


async def latest_state(consumer_factory: Any, topic: str, key: str, *, version: int) -> PaymentState:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [payment_state_serde().decode(r.value) for r in await drain(await consumer_factory(topic), idle_s=1)]
        mine = [s for s in states if s.payment_key == key]
        if mine and max(s.version for s in mine) >= version:
            return max(mine, key=lambda s: s.version)
        await asyncio.sleep(0.5)
    raise AssertionError(f"no state of version {version} for {key}")


def rebuild(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "paystream", "state", "rebuild", *args], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_rebuild_applies_the_events_a_state_lacks(
        worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory, publish_raw: Any,
        producer_factory: Any, consumer_factory: Any, topics: TopicCatalog, stream_env: dict[str, str]) -> None:
    worker_factory()
    now = int(time.time())
    paid = stripe_payment_intent("payment_intent.succeeded", "pi_rebuild", amount=2000, currency="EUR", created=now,
                                 charge="ch_rebuild")
    await publish_raw(envelope_factory(paid.body))
    before = await latest_state(consumer_factory, topics.state, "stripe:pi_rebuild", version=1)
    assert (before.status, before.refunded_minor) == ("succeeded", 0)

    # An event on payments.events.v1 that the state never saw (a state gone stale).
    refund = stripe_refund("refund.created", "re_rebuild", "pi_rebuild", "ch_rebuild", amount=500, currency="EUR",
                           created=now + 60)
    missed = normalize(envelope_factory(refund.body))
    producer = await producer_factory()
    await producer.send_and_wait(topics.events, payment_event_serde().encode(missed), key=b"stripe:pi_rebuild")
    other = replace(missed, event_key="stripe:evt_other", payment_id="pi_other",
                    occurred_at=missed.occurred_at + timedelta(seconds=1))
    await producer.send_and_wait(topics.events, payment_event_serde().encode(other), key=b"stripe:pi_other")

    assert "would re-send 2 event(s) of 1 payment(s)" in rebuild(stream_env, "--payment", "stripe:pi_rebuild",
                                                                 "--dry-run")
    assert "re-sent 2 event(s) of 1 payment(s)" in rebuild(stream_env, "--payment", "stripe:pi_rebuild")
    after = await latest_state(consumer_factory, topics.state, "stripe:pi_rebuild", version=2)
    assert (after.status, after.refunded_minor, after.version) == ("partially_refunded", 500, 2)
    assert after.refunds == {"re_rebuild": 500}


async def test_rebuild_folds_again_a_state_older_money_rules_folded(
        worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory, publish_raw: Any,
        producer_factory: Any, consumer_factory: Any, topics: TopicCatalog, stream_env: dict[str, str],
        tmp_path: Path) -> None:
    """After an upgrade of the money rules: the worker restores a state an older release folded (from the
    changelog), and a rebuild folds it again, same events and version, and sends it on to the sink."""
    first = worker_factory()
    now = int(time.time())
    paid = stripe_payment_intent("payment_intent.succeeded", "pi_refold", amount=2000, currency="EUR", created=now,
                                 charge="ch_refold")
    refund = stripe_refund("refund.created", "re_refold", "pi_refold", "ch_refold", amount=500, currency="EUR",
                           created=now + 60)
    await publish_raw(envelope_factory(paid.body), envelope_factory(refund.body))
    state = await latest_state(consumer_factory, topics.state, "stripe:pi_refold", version=2)
    assert (state.refunded_minor, state.fold_revision) == (500, FOLD_REVISION)
    first.stop()

    # what an older release left in the changelog: the same events, other numbers
    stale = replace(state, fold_revision=0, refunded_minor=1000)
    key = b"stripe:pi_refold"
    producer = await producer_factory()
    await producer.send_and_wait(f"{topics.prefix}paystream-worker-payment-state-changelog",
                                 payment_state_serde().encode(stale), key=key,
                                 partition=partition_for(key, topics.partitions))
    second = worker_factory(PAYSTREAM_DATA_DIR=str(tmp_path / "fresh-data"))  # restores all from the changelog
    restored = second.get("/payments/pi_refold").json()["payment"]
    assert (restored["refunded_minor"], restored["fold_revision"], restored["version"]) == (1000, 0, 2)

    assert "re-sent 2 event(s) of 1 payment(s)" in rebuild(stream_env, "--payment", "stripe:pi_refold")
    deadline = time.monotonic() + 60
    while (now_there := second.get("/payments/pi_refold").json()["payment"])["fold_revision"] != FOLD_REVISION:
        assert time.monotonic() < deadline, now_there
        await asyncio.sleep(0.2)
    assert (now_there["refunded_minor"], now_there["version"]) == (500, 2)
    records = await drain(await consumer_factory(topics.state), idle_s=1)
    states = [payment_state_serde().decode(r.value) for r in records]
    assert [s for s in states if s.payment_key == "stripe:pi_refold"][-1] == state  # what the sink gets
    assert "payment states folded again by the current money rules" in second.log_path.read_text("utf-8", "replace")
