"""Crash and restart on the embedded broker (DESIGN.md quirks 2, 4 and 7) and, where marked, on Apache Kafka.

The invariant everywhere: every event id reaches payments.events.v1; an event id
appears twice only as a replay of the same raw (partition, offset) — proven by
the `paystream.source` header — and the final payment states equal a reference
model applied to the input.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paystream.dev.scenarios import Delivery, scenario
from schemas.records import PaymentState, WebhookEnvelope
from schemas.serde import payment_event_serde, payment_state_serde
from streams.normalize import normalize
from streams.pipeline import SOURCE_HEADER
from streams.state import fold_all
from tests.fixtures.kafka import drain
from tests.fixtures.streams import EnvelopeFactory, WorkerProcess


def stories(count: int, seed: int = 11) -> list[Delivery]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    deliveries: list[Delivery] = []
    for n in range(count):
        name = rng.choice(["checkout", "refund", "dispute"])
        provider = rng.choice(["stripe", "paypal"])
        deliveries += scenario(name, provider, start=start + timedelta(minutes=n), rng=rng,
                               amount=rng.randint(100, 50_000), currency=rng.choice(["USD", "EUR", "JPY"]))
    return deliveries


def reference_states(envelopes: list[WebhookEnvelope]) -> dict[str, tuple[object, ...]]:
    states = fold_all([normalize(envelope) for envelope in envelopes])
    return {key: summary(state) for key, state in states.items()}


def summary(state: PaymentState) -> tuple[object, ...]:
    return (state.status, state.amount_minor, state.captured_minor, state.refunded_minor, state.disputed_minor,
            state.currency, state.version)


async def check_invariant(topics: Any, consumer_factory: Any, envelopes: list[WebhookEnvelope]) -> dict[str, int]:
    expected_keys = {e.key for e in envelopes}
    await wait_for_event_keys(topics, consumer_factory, expected_keys)
    records = await drain(await consumer_factory(topics.events), idle_s=3, timeout_s=240)
    sources: dict[str, set[bytes]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for record in records:
        event = payment_event_serde().decode(record.value)
        counts[event.event_key] += 1
        sources[event.event_key].add(dict(record.headers)[SOURCE_HEADER])
    assert set(counts) == expected_keys, f"lost: {len(expected_keys - set(counts))}"
    assert all(len(s) == 1 for s in sources.values()), "an event id came from two different source offsets"
    reference = reference_states(envelopes)
    latest: dict[str, PaymentState] = {}
    read = 0

    def newest_equal_reference(records: list[Any]) -> bool:  # a state sent late (after a takeover) still counts
        nonlocal read
        for record in records[read:]:
            state = payment_state_serde().decode(record.value)
            if state.payment_key not in latest or state.version > latest[state.payment_key].version:
                latest[state.payment_key] = state
        read = len(records)
        return {k: summary(v) for k, v in latest.items()} == reference

    await drain(await consumer_factory(topics.state), until=newest_equal_reference, timeout_s=120)
    latest.clear()
    read = 0
    newest_equal_reference(await drain(await consumer_factory(topics.state), idle_s=3, timeout_s=240))  # all of it
    assert {k: summary(v) for k, v in latest.items()} == reference
    return {"events": len(records), "replayed": sum(c - 1 for c in counts.values())}


async def wait_processed(topics: Any, consumer_factory: Any, expected: int, timeout_s: float = 240) -> None:
    await drain(await consumer_factory(topics.events), expected=expected, timeout_s=timeout_s)


async def wait_for_event_keys(topics: Any, consumer_factory: Any, expected: set[str], timeout_s: float = 240) -> None:
    """Until every expected event id is on payments.events.v1 (or the timeout: then the check reports it lost).

    Counting records is not enough after a kill -9: replays are records too, so a count can be reached
    while an event held up by the takeover is still on its way, and a drain that then stops after a few
    idle seconds would call it lost."""
    seen: set[str] = set()
    serde = payment_event_serde()
    read = 0

    def arrived(records: list[Any]) -> bool:
        nonlocal read
        seen.update(serde.decode(r.value).event_key for r in records[read:])
        read = len(records)
        return expected <= seen

    await drain(await consumer_factory(topics.events), until=arrived, timeout_s=timeout_s)


@pytest.mark.both_brokers
async def test_kill_9_and_restart_on_its_own_data_dir_resumes_exactly(
        kafka: Any, worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory, publish_raw: Any,
        topics: Any, consumer_factory: Any) -> None:
    envelopes = [envelope_factory(d.body, provider=d.provider) for d in stories(150)]
    worker = worker_factory(PAYSTREAM_STREAM_BATCH_SIZE="50")
    half = len(envelopes) // 2
    await publish_raw(*envelopes[:half])
    await drain(await consumer_factory(topics.events), expected=half // 2, timeout_s=120)
    worker.kill()
    await publish_raw(*envelopes[half:])
    worker.start().wait_ready()
    # a replay of the same offsets is fine; a duplicate by retry is not
    await publish_raw(*random.Random(5).sample(envelopes, 40))
    figures = await check_invariant(topics, consumer_factory, envelopes)
    assert figures["events"] >= len(envelopes)
    assert worker.get("/dedup/stats").json()["duplicates"] >= 1


@pytest.mark.both_brokers
@pytest.mark.children_unmeasured  # a series of kill -9s: the single kill -9 test below measures that path
async def test_crash_safety_under_load_with_repeated_kill_9(
        kafka: Any, worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory,
        publish_raw: Any, topics: Any, consumer_factory: Any) -> None:
    """5,000 raw records stream in while the worker is killed -9 three times, on either broker.

    On Apache Kafka each restart waits out the dead member's group session (10 s in the suite, 30 s by
    default; the embedded broker's is 6 s) before it gets its partitions back.
    """
    unique, total, kills = 4000, 5000, 3
    deliveries = stories(1100, seed=23)[:unique]
    envelopes = [envelope_factory(d.body, provider=d.provider) for d in deliveries]
    retries = [envelope_factory(d.body, provider=d.provider, event_id=envelopes[i].provider_event_id)
               for i, d in enumerate(deliveries[:total - unique])]  # provider retries: same id, same body
    traffic = envelopes + retries
    random.Random(9).shuffle(traffic)
    assert len(traffic) == total
    worker = worker_factory(PAYSTREAM_STREAM_BATCH_SIZE="200")

    async def stream() -> None:
        step = total // 20  # 20 tranches ~0.4 s apart: the (first) kill at 4 s comes while records stream in
        for start in range(0, len(traffic), step):
            await publish_raw(*traffic[start:start + step])
            await asyncio.sleep(0.4)

    producer = asyncio.create_task(stream())
    for _ in range(kills):
        await asyncio.sleep(4)
        worker.kill()
        worker.start().wait_ready()
    await producer
    figures = await check_invariant(topics, consumer_factory, envelopes)
    assert worker.starts == kills + 1
    print(f"crash safety: {len(traffic)} records, {figures}")


async def test_restart_on_a_fresh_broker_with_old_state_resets_cleanly(
        broker_factory: Any, tmp_path: Any, envelope_factory: EnvelopeFactory, stream_env: dict[str, str]) -> None:
    """Quirk 4: the embedded broker forgets everything; old RocksDB state must not crash the worker."""
    from aiokafka import AIOKafkaProducer

    from paystream.core.broker import free_port
    from schemas.serde import envelope_serde
    from schemas.topics import TopicCatalog, ensure_topics

    async def run_once(broker: Any, envelopes: list[WebhookEnvelope]) -> WorkerProcess:
        catalog = TopicCatalog(prefix=stream_env["PAYSTREAM_TOPIC_PREFIX"], partitions=4)
        await ensure_topics(broker.bootstrap, catalog)
        env = {**stream_env, "PAYSTREAM_KAFKA_BOOTSTRAP": broker.bootstrap, "PAYSTREAM_WORKER_PORT": str(port)}
        worker = WorkerProcess("worker", ["worker"], env, port, tmp_path / "fresh.log").start().wait_ready()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
        await producer.start()
        for envelope in envelopes:
            await producer.send_and_wait(catalog.raw, envelope_serde().encode(envelope), key=envelope.key.encode())
        await producer.stop()
        payment = normalize(envelopes[-1]).payment_id
        for _ in range(200):
            response = worker.get(f"/payments/{payment}")
            if response.status_code == 200:
                return worker
            await asyncio.sleep(0.3)
        raise AssertionError(f"payment never appeared:\n{worker.tail()}")

    port = free_port()
    first_broker = broker_factory().start()
    first = await run_once(first_broker, [envelope_factory(d.body, provider=d.provider) for d in stories(5)])
    first.stop()
    broker_port = first_broker.port
    first_broker.stop()
    second_broker = broker_factory(port=broker_port).start()
    second = await run_once(second_broker, [envelope_factory(d.body, provider=d.provider)
                                            for d in stories(5, seed=99)])
    assert "another broker incarnation" in second.tail(400)
    assert second.stop() == 0


def follow_ups(first: list[Delivery], seed: int) -> list[Delivery]:
    """More events for the same payments (refunds), so state must carry over."""
    from paystream.dev.scenarios import paypal_refund, stripe_refund

    rng = random.Random(seed)
    more: list[Delivery] = []
    later = datetime(2026, 11, 20, tzinfo=UTC)
    for delivery in first:
        if delivery.event_type not in ("payment_intent.succeeded", "PAYMENT.CAPTURE.COMPLETED"):
            continue
        amount = 50
        obj = json.loads(delivery.body)
        if delivery.provider == "stripe":  # the refund names the payment's own charge
            charge = obj["data"]["object"]["latest_charge"]
            more.append(stripe_refund("refund.created", f"re_{rng.getrandbits(48):x}", delivery.payment_id,
                                      charge, amount=amount, currency="USD", created=int(later.timestamp())))
        else:  # a PayPal refund names only its capture, which the worker links to the order (the payment)
            capture = obj["resource"]["id"]
            more.append(paypal_refund("PAYMENT.CAPTURE.REFUNDED", f"R{rng.getrandbits(48):X}", capture,
                                      amount=amount, total_refunded=0, currency="USD", when=later,
                                      order=delivery.payment_id))
    return more


@pytest.mark.both_brokers
@pytest.mark.children_unmeasured  # four takeovers; tests/deploy/test_scale.py measures the two-worker path
@pytest.mark.parametrize("standbys", ["0", "1"])
async def test_two_workers_kill_9_one_and_the_survivor_takes_over(
        standbys: str, worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory,
        publish_raw: Any, topics: Any, consumer_factory: Any) -> None:
    """Quirk 7: the survivor restores the dead worker's changelog partitions completely and goes on.

    With 0 standbys the survivor has none of the dead worker's partitions locally and must read
    them from the changelog (multi-record batches, so quirk 2's end offsets matter too).
    """
    first = stories(120, seed=31)
    first_envelopes = [envelope_factory(d.body, provider=d.provider) for d in first]
    options = {"PAYSTREAM_STREAM_BATCH_SIZE": "100", "PAYSTREAM_TABLE_STANDBY_REPLICAS": standbys}
    a = worker_factory(PAYSTREAM_WORKER_ID="a", **options)
    b = worker_factory(PAYSTREAM_WORKER_ID="b", **options)
    await publish_raw(*first_envelopes)
    await wait_processed(topics, consumer_factory, len(first_envelopes))
    await asyncio.sleep(4)  # let both workers commit
    a.kill()
    # provider retries of old events (dedup state must survive) and new events for old payments (state must)
    retries = [envelope_factory(e.body, provider=e.provider, event_id=e.provider_event_id)
               for e in random.Random(2).sample(first_envelopes, 60)]
    second = [envelope_factory(d.body, provider=d.provider) for d in follow_ups(first, seed=4)]
    await publish_raw(*retries, *second)
    all_envelopes = first_envelopes + second
    figures = await check_invariant(topics, consumer_factory, all_envelopes)
    stats = b.get("/dedup/stats").json()
    assert stats["duplicates"] >= 1, (stats, b.tail())
    print(f"takeover: {figures}, survivor dedup stats {stats}")
