"""A real worker process: a bad record is a dead letter and the batch goes on; a failed delivery stops the
worker uncommitted, and the restart delivers everything (duplicates only as replays of one source offset).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import TopicPartition

from paystream.core.broker import CompatConsumer
from paystream.core.settings import Settings
from paystream.dev.scenarios import scenario
from schemas.dlq import parse_dlq_headers
from schemas.serde import payment_event_serde, payment_state_serde
from streams.app import app_id
from streams.pipeline import SOURCE_HEADER
from tests.fixtures.faults import ENV
from tests.fixtures.kafka import drain
from tests.fixtures.streams import EnvelopeFactory, WorkerProcess

pytestmark = pytest.mark.both_brokers


def sources_by_event(records: list[Any]) -> dict[str, set[bytes]]:
    found: dict[str, set[bytes]] = defaultdict(set)
    for record in records:
        found[payment_event_serde().decode(record.value).event_key].add(dict(record.headers)[SOURCE_HEADER])
    return found


async def committed(kafka: Any, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    consumer = CompatConsumer(bootstrap_servers=kafka.bootstrap, group_id=group, enable_auto_commit=False,
                              embedded=kafka.is_embedded)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


async def end_offsets(consumer_factory: Any, topic: str, partitions: int) -> dict[int, int]:
    consumer = await consumer_factory(topic)
    ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    return {tp.partition: offset for tp, offset in ends.items()}


async def test_null_value_and_garbage_raw_records_are_dead_letters_and_the_batch_goes_on(
        worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory, publish_raw: Any,
        topics: Any, consumer_factory: Any, kafka: Any) -> None:
    worker = worker_factory()
    good = [envelope_factory(d.body) for d in scenario("checkout", "stripe")]
    null, garbage = (b"stripe:evt_null", None), (b"stripe:evt_garbage", b"\xc3\x01garbage after a header")
    await publish_raw(good[0], null, good[1], garbage, good[2])
    events = await drain(await consumer_factory(topics.events), expected=3, idle_s=2, timeout_s=60)
    assert sorted(payment_event_serde().decode(r.value).event_key for r in events) == sorted(e.key for e in good)
    letters = await drain(await consumer_factory(topics.dlq), expected=2, timeout_s=30)
    raw = {r.key: r for r in await drain(await consumer_factory(topics.raw), expected=5, timeout_s=30)}
    assert {r.key for r in letters} == {null[0], garbage[0]}
    for letter in letters:
        info, source = parse_dlq_headers(letter.headers), raw[letter.key]
        assert (info.stage, info.original_topic, info.original_partition, info.original_offset, info.attempts) == \
            ("decode", topics.raw, source.partition, source.offset, 1)
        assert info.exception_class and info.replay_topic is None
        assert letter.value == source.value  # the original bytes (None for the null record)
    states = await drain(await consumer_factory(topics.state), idle_s=2, timeout_s=30)
    assert max(payment_state_serde().decode(r.value).version for r in states) == 3
    # the worker survived the batch and committed all of it, once its outputs were there
    assert worker.alive() and worker.starts == 1
    group = app_id(Settings(topic_prefix=topics.prefix))
    ends = await end_offsets(consumer_factory, topics.raw, topics.partitions)
    deadline = time.monotonic() + 30
    while await committed(kafka, group, topics.raw, topics.partitions) != {p: e or None for p, e in ends.items()}:
        assert time.monotonic() < deadline, "the raw topic's offsets were not all committed"
        await asyncio.sleep(0.5)
    assert worker.get("/dlq/recent").json()["count"] == 2


async def test_an_unacknowledged_send_mid_batch_stops_the_worker_uncommitted_and_the_restart_delivers_it(
        worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory, publish_raw: Any,
        topics: Any, consumer_factory: Any) -> None:
    fault = {"fail_send": {"topic": topics.events, "nth": 4}}
    worker = worker_factory(module="tests.fixtures.faults", **{ENV: json.dumps(fault)})
    payments = [list(scenario("checkout", "stripe")) for _ in range(4)]
    envelopes = [envelope_factory(d.body) for deliveries in payments for d in deliveries]
    await publish_raw(*envelopes)
    deadline = time.monotonic() + 60
    while worker.alive():
        assert time.monotonic() < deadline, "the worker kept going after a send it could not deliver"
        await asyncio.sleep(0.2)
    assert worker.process is not None and worker.process.returncode != 0
    assert "batch not delivered; stopping the worker before Faust commits it" in worker.tail(400)
    before = sources_by_event(await drain(await consumer_factory(topics.events), idle_s=1))
    assert len(before) < len(envelopes), "the injected failure lost nothing to recover"

    worker.env = {k: v for k, v in worker.env.items() if k != ENV}  # the broker is back: restart, same data dir
    worker.start().wait_ready()
    retry = envelope_factory(payments[0][0].body)  # a provider retry after the restart: still a duplicate
    await publish_raw(retry)
    await drain(await consumer_factory(topics.events), until=lambda rs: len(sources_by_event(rs)) >= len(envelopes),
                timeout_s=60)
    await asyncio.sleep(2)  # nothing more may trickle out
    found = sources_by_event(await drain(await consumer_factory(topics.events), idle_s=1))
    assert sorted(found) == sorted(e.key for e in envelopes), "an event was lost"
    assert all(len(sources) == 1 for sources in found.values()), "an event went out from two source offsets"
    states = await drain(await consumer_factory(topics.state), idle_s=2, timeout_s=30)
    latest: dict[str, Any] = {}
    for record in states:
        state = payment_state_serde().decode(record.value)
        if state.payment_key not in latest or state.version >= latest[state.payment_key].version:
            latest[state.payment_key] = state
    assert len(latest) == len(payments)
    assert all((s.status, s.version) == ("succeeded", 3) for s in latest.values())
    stats = worker.get("/dedup/stats").json()
    assert stats["duplicates"] == 1


async def test_records_that_arrive_while_a_failed_batch_waits_are_not_committed_by_the_stopping_worker(
        worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory, publish_raw: Any,
        topics: Any, consumer_factory: Any) -> None:
    """Faust's `take_events` turns the stream's acknowledgements back on when it ends; records fetched after
    a failed batch must still not be committed unprocessed while the worker stops (a loss seen in CI)."""
    fault = {"fail_send": {"topic": topics.events, "nth": 3, "after_s": 3.0}}
    worker = worker_factory(module="tests.fixtures.faults", **{ENV: json.dumps(fault)})
    first = [envelope_factory(d.body) for _ in range(2) for d in scenario("checkout", "stripe")]
    await publish_raw(*first)
    await drain(await consumer_factory(topics.events), expected=2, timeout_s=30)  # the failing batch waits
    second = [envelope_factory(d.body) for _ in range(6) for d in scenario("checkout", "stripe")]
    for envelope in second:  # one at a time: fetched while the batch waits and while the worker stops
        await publish_raw(envelope)
        await asyncio.sleep(0.05)
    deadline = time.monotonic() + 60
    while worker.alive():
        assert time.monotonic() < deadline, "the worker kept going after a send it could not deliver"
        await asyncio.sleep(0.2)
    assert "batch not delivered; stopping the worker before Faust commits it" in worker.tail(400)

    worker.env = {k: v for k, v in worker.env.items() if k != ENV}
    worker.start().wait_ready()
    expected = sorted(e.key for e in first + second)
    await drain(await consumer_factory(topics.events), until=lambda rs: len(sources_by_event(rs)) >= len(expected),
                timeout_s=60)
    found = sources_by_event(await drain(await consumer_factory(topics.events), idle_s=1))
    assert sorted(found) == expected, f"lost: {sorted(set(expected) - set(found))}"
