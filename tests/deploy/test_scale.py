"""Scale-out without Docker: two ingress and two worker processes on the embedded broker.

The compose stack's shape (two ingresses, two workers, one consumer group), natively:
1. webhooks posted alternately to both ingresses flow to payments.events.v1 and payments.state.v1;
2. the raw topic's partitions are split between the workers: each worker's own view of the
   assignment (Faust's `/router/topics`) is disjoint from the other's, together they cover every
   partition, and each worker's Faust sensor shows it consumed exactly its partitions;
3. one worker is killed with SIGKILL: the survivor is assigned every partition, and every
   event posted before and after the kill reaches the output topics — nothing is lost.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client.parser import text_string_to_metric_families

from ingress.signing import sign_stripe
from schemas.serde import payment_event_serde, payment_state_serde
from schemas.topics import TopicCatalog, ensure_topics
from tests.deploy.conftest import STRIPE_SECRET, Pipeline, ServiceProcess
from tests.fixtures.kafka import drain

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]

PARTITIONS = 4
PER_PARTITION = 5
_partitioner = DefaultPartitioner()


def events_for_every_partition(tag: str, per_partition: int = PER_PARTITION) -> list[tuple[str, str]]:
    """(event id, payment id) pairs whose raw-topic keys land `per_partition` times on every partition."""
    chosen: dict[int, list[tuple[str, str]]] = {p: [] for p in range(PARTITIONS)}
    for n in itertools.count():
        event_id, payment_id = f"evt_{tag}_{n}", f"pi_{tag}_{n}"
        partition = _partitioner(f"stripe:{event_id}".encode(), list(range(PARTITIONS)), list(range(PARTITIONS)))
        if len(chosen[partition]) < per_partition:
            chosen[partition].append((event_id, payment_id))
        if all(len(v) == per_partition for v in chosen.values()):
            return [pair for pairs in chosen.values() for pair in pairs]
    raise AssertionError("unreachable")


async def post_all(ingresses: list[ServiceProcess], events: list[tuple[str, str]]) -> None:
    now = int(time.time())
    async with httpx.AsyncClient(timeout=15) as client:
        for n, (event_id, payment_id) in enumerate(events):
            body = json.dumps({"id": event_id, "object": "event", "created": now, "livemode": False,
                               "type": "payment_intent.succeeded",
                               "data": {"object": {"id": payment_id, "object": "payment_intent", "amount": 1000 + n,
                                                   "currency": "usd", "status": "succeeded", "created": now,
                                                   "amount_received": 1000 + n}}}).encode()
            target = ingresses[n % len(ingresses)]
            response = await client.post(f"{target.url}/webhooks/stripe", content=body, headers={
                "Content-Type": "application/json", "Stripe-Signature": sign_stripe(body, STRIPE_SECRET, now)})
            assert response.status_code == 200, f"{target.url}: {response.status_code} {response.text}"


def assigned_raw_partitions(worker: ServiceProcess, catalog: TopicCatalog) -> dict[str, set[int]]:
    """This worker's view of who owns which raw-topic partition: {worker url: partitions}."""
    response = httpx.get(f"{worker.url}/router/topics", timeout=5)
    response.raise_for_status()
    return {url: set(topics.get(catalog.raw, [])) for url, topics in response.json().items()}


def raw_gauges(worker: ServiceProcess, catalog: TopicCatalog) -> list[Any]:
    return [(f.name, s.labels, s.value) for f in text_string_to_metric_families(worker.metrics_text())
            for s in f.samples if s.labels.get("topic") in (catalog.raw,)]


def consumed_raw_partitions(worker: ServiceProcess, catalog: TopicCatalog) -> set[int]:
    """Raw partitions this worker received messages from (Faust's sensor)."""
    found: set[int] = set()
    for family in text_string_to_metric_families(worker.metrics_text()):
        if family.name.endswith("_messages_received_per_topics_partition"):
            found |= {int(s.labels["partition"]) for s in family.samples
                      if s.labels.get("topic") == catalog.raw and s.value > 0}
    return found


async def wait_for(predicate: Callable[[], Any], timeout_s: float, message: str | Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = await asyncio.to_thread(predicate)
        except httpx.HTTPError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message)
        await asyncio.sleep(0.5)


async def output_keys(consumer_factory: Any, catalog: TopicCatalog, events: list[tuple[str, str]],
                      *, with_states: bool = True) -> tuple[set[str], dict[str, Any]]:
    """Event keys and latest states once every one of `events` is out (or 60 s each have passed).

    Waits for the keys themselves, not a record count: replays after a kill -9 are records too.
    """
    wanted_keys = {f"stripe:{event_id}" for event_id, _ in events}
    wanted_payments = {payment_id for _, payment_id in events}

    def event_key(record: Any) -> str:
        return payment_event_serde().decode(record.value).event_key

    def payment(record: Any) -> str:
        return payment_state_serde().decode(record.value).payment_id

    records = await drain(await consumer_factory(catalog.events), timeout_s=60,
                          until=lambda rs: wanted_keys <= {event_key(r) for r in rs})
    event_keys = {event_key(r) for r in records}
    latest: dict[str, Any] = {}
    if with_states:
        states = await drain(await consumer_factory(catalog.state), timeout_s=60,
                             until=lambda rs: wanted_payments <= {payment(r) for r in rs})
        for record in states:
            state = payment_state_serde().decode(record.value)
            latest[state.payment_id] = state
    return event_keys, latest


async def test_two_workers_split_the_partitions_and_a_killed_one_loses_nothing(
        kafka: Any, topic_catalog_factory: Callable[..., TopicCatalog], pipeline_factory: Callable[..., Pipeline],
        consumer_factory: Any) -> None:
    catalog = topic_catalog_factory(partitions=PARTITIONS)
    await ensure_topics(kafka.bootstrap, catalog)
    pipeline = pipeline_factory(kafka.bootstrap, prefix=catalog.prefix, partitions=PARTITIONS,
                                embedded=kafka.is_embedded)
    workers = [pipeline.worker(), pipeline.worker()]
    ingresses = [pipeline.ingress(), pipeline.ingress()]
    await asyncio.gather(*(asyncio.to_thread(i.wait_ready) for i in ingresses),
                         *(asyncio.to_thread(w.wait_ready, 120) for w in workers))

    def split() -> dict[str, set[int]] | None:
        views = [assigned_raw_partitions(w, catalog) for w in workers]
        owners = {url: parts for url, parts in views[0].items() if parts}
        if len(owners) != 2 or views[1] != views[0]:
            return None
        first, second = owners.values()
        return owners if not first & second and first | second == set(range(PARTITIONS)) else None

    owners = await wait_for(split, 60, "the two workers never split the raw partitions between them")
    by_worker = {w.port: parts for w in workers for url, parts in owners.items() if url.endswith(f":{w.port}")}
    assert set(by_worker) == {w.port for w in workers}

    # 1. events flow through both ingresses and both workers
    before = events_for_every_partition("before")
    await post_all(ingresses, before)
    keys, states = await output_keys(consumer_factory, catalog, before)
    assert keys == {f"stripe:{e}" for e, _ in before}
    assert {p for _, p in before} <= set(states)

    # 2. each worker consumed exactly the partitions it was assigned
    for worker in workers:
        consumed = await wait_for(lambda w=worker: consumed_raw_partitions(w, catalog) == by_worker[w.port] or None,
                                  20, f"worker :{worker.port} consumed other partitions than assigned")
        assert consumed

    # 3. kill -9 one worker; the survivor takes its partitions; nothing posted before or after is lost
    victim, survivor = workers
    victim.kill()
    after = events_for_every_partition("after")
    await post_all(ingresses, after)

    def survivor_owns_everything_and_recovered() -> bool:
        view = assigned_raw_partitions(survivor, catalog)
        owners = [url for url, parts in view.items() if parts]
        return owners == [next(u for u in view if u.endswith(f":{survivor.port}"))] \
            and view[owners[0]] == set(range(PARTITIONS)) \
            and httpx.get(f"{survivor.url}/ready", timeout=5).status_code == 200

    await wait_for(survivor_owns_everything_and_recovered, 120,
                   lambda: f"the survivor never took over:\n{survivor.tail(30)}")
    keys, states = await output_keys(consumer_factory, catalog, before + after)
    expected = {f"stripe:{e}" for e, _ in before + after}
    assert expected <= keys, (f"lost: {sorted(expected - keys)[:10]} owners before the kill {by_worker}, "
                              f"survivor :{survivor.port}\n{survivor.tail(200)}")
    assert {p for _, p in before + after} <= set(states)
    assert all(states[p].status == "succeeded" for _, p in before + after)
    # Faust clears its per-partition gauges on every rebalance: a batch after the takeover shows
    # the survivor now consumes every partition itself.
    late = events_for_every_partition("late", per_partition=1)
    await post_all(ingresses, late)
    await wait_for(lambda: consumed_raw_partitions(survivor, catalog) == set(range(PARTITIONS)) or None, 30,
                   lambda: f"the survivor did not consume every partition: {raw_gauges(survivor, catalog)}")
    keys, _ = await output_keys(consumer_factory, catalog, late, with_states=False)
    assert {f"stripe:{e}" for e, _ in late} <= keys
    assert httpx.get(f"{survivor.url}/ready", timeout=5).status_code == 200
