"""`PAYSTREAM_PROCESSING_GUARANTEE=exactly_once`: Faust transactions on Apache Kafka, refused on the embedded broker."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from paystream.core.broker import faust_broker_options
from paystream.core.settings import Settings
from paystream.dev.scenarios import stripe_payment_intent
from schemas.serde import payment_event_serde, payment_state_serde
from tests.fixtures.kafka import drain
from tests.fixtures.streams import EnvelopeFactory, WorkerProcess

T0 = 1_790_000_000


def test_exactly_once_is_refused_on_the_embedded_broker() -> None:
    """No transactions there (quirk 1): a clear error at startup, not a worker that hangs in InitProducerId."""
    for embedded in ({"kafka_bootstrap": ""}, {"kafka_bootstrap": "127.0.0.1:9092", "embedded_broker": True}):
        with pytest.raises(ValidationError, match="exactly_once needs Apache Kafka"):
            Settings(processing_guarantee="exactly_once", **embedded)
    with pytest.raises(ValueError, match="needs Apache Kafka"):
        faust_broker_options(embedded=True, processing_guarantee="exactly_once")
    assert Settings(processing_guarantee="exactly_once", kafka_bootstrap="kafka:9092").processing_guarantee == \
        "exactly_once"
    assert faust_broker_options(embedded=False, processing_guarantee="exactly_once")["processing_guarantee"] == \
        "exactly_once"
    assert Settings().processing_guarantee == "at_least_once"


@pytest.mark.parametrize("kafka", ["apache-kafka"], indirect=True)
async def test_exactly_once_worker_processes_a_scenario_end_to_end(
        worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory, publish_raw: Any,
        topics: Any, consumer_factory: Any) -> None:
    worker = worker_factory(PAYSTREAM_PROCESSING_GUARANTEE="exactly_once")
    deliveries = [
        stripe_payment_intent("payment_intent.created", "pi_eos", amount=1500, currency="EUR", created=T0),
        stripe_payment_intent("payment_intent.processing", "pi_eos", amount=1500, currency="EUR", created=T0 + 3),
        stripe_payment_intent("payment_intent.succeeded", "pi_eos", amount=1500, currency="EUR", created=T0 + 7,
                              charge="ch_eos"),
    ]
    envelopes = [envelope_factory(d.body) for d in deliveries]
    sent = envelopes * 2
    random.Random(7).shuffle(sent)
    await publish_raw(*sent)
    committed = {"isolation_level": "read_committed"}
    events = await drain(await consumer_factory(topics.events, **committed), expected=3, idle_s=2, timeout_s=60)
    assert sorted(payment_event_serde().decode(r.value).event_key for r in events) == sorted(e.key for e in envelopes)
    states = [payment_state_serde().decode(r.value) for r in await drain(
        await consumer_factory(topics.state, **committed),
        until=lambda rs: any(payment_state_serde().decode(r.value).status == "succeeded" for r in rs),
        timeout_s=60)]
    latest = max(states, key=lambda s: s.version)
    assert (latest.payment_key, latest.status, latest.amount_minor, latest.captured_minor) == \
        ("stripe:pi_eos", "succeeded", 1500, 1500)
    await asyncio.sleep(1.5)  # duplicates must not trickle out later either
    assert len(await drain(await consumer_factory(topics.events, **committed), idle_s=1)) == 3
    assert "processing_guarantee=exactly_once" in worker.log_path.read_text(errors="replace")
    # the broker's transaction log names this worker's transactional producers (`<app id>-<group>-<partition>`)
    transactional_ids = await _transactional_ids(consumer_factory, f"{topics.prefix}paystream-worker-")
    assert transactional_ids, "no transactions on the broker for this worker"


async def _transactional_ids(consumer_factory: Any, prefix: str) -> set[str]:
    """Transactional ids in `__transaction_state` starting with `prefix` (key: int16 version, int16 length, id)."""
    records = await drain(await consumer_factory("__transaction_state"), idle_s=1.5, timeout_s=20)
    found = set()
    for record in records:
        key = record.key or b""
        length = int.from_bytes(key[2:4], "big")
        transactional_id = key[4:4 + length].decode(errors="replace")
        if transactional_id.startswith(prefix):
            found.add(transactional_id)
    return found
