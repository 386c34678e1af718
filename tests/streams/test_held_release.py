"""A held event whose payment no event ever names is released under the id it names, past the horizon.

In-process (tests/streams/memory.py stands in for the broker and the local RocksDB), with the pipeline's
real state stage: a PayPal refund names only its capture, and the capture's own event (which would say
which order it belongs to) never comes. Until `PAYSTREAM_HELD_RELEASE_S` of event time has passed on the
partition the refund is held (no state, nothing on payments.events.v1); after it, the capture is its own
payment: the refund is applied and emitted under it, as the reference model keys it. A capture event that
comes even later is a conflict, counted, and changes neither payment's refunds.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from paystream.dev.scenarios import Delivery, paypal_capture, paypal_refund, stripe_payment_intent
from schemas.serde import payment_event_serde
from schemas.topics import partition_for
from streams.identity import ALIAS_PREFIX, AliasEntry
from tests.streams.memory import PARTITIONS, MemoryTable, Ownership, Producer, restore
from tests.streams.test_state_takeover import (
    CHANGELOG,
    EVENTS,
    RECEIVED_AT,
    STATE,
    STATE_INPUT,
    Cluster,
    Worker,
    local_states,
)

HORIZON = timedelta(days=3)
CAPTURE = "C-LONE-1"
ALIAS_KEY = f"paypal:{CAPTURE}".encode()


def neighbour(n: int) -> Delivery:
    """A payment on the alias's partition, so that partition's event-time clock moves on."""
    partition = partition_for(ALIAS_KEY, PARTITIONS)
    i = 0
    while partition_for(f"stripe:pi_near_{n}_{i}".encode(), PARTITIONS) != partition:
        i += 1
    return stripe_payment_intent("payment_intent.created", f"pi_near_{n}_{i}", amount=100, currency="USD",
                                 created=int(RECEIVED_AT.timestamp()))


def entry(worker: Worker) -> AliasEntry:
    return AliasEntry.unpack(worker.states.get(partition_for(ALIAS_KEY, PARTITIONS), ALIAS_PREFIX + ALIAS_KEY))


def emitted(cluster: Cluster) -> dict[str, str]:
    serde = payment_event_serde()
    return {e.event_key: e.payment_key for e in (serde.decode(r.value) for r in cluster.producer.logs[EVENTS])}


async def held(release_s: int) -> tuple[Cluster, Worker, Delivery]:
    """The refund held on day 0, and a neighbour's event on day 4 published (not yet consumed)."""
    cluster = Cluster(Producer())
    worker = cluster.worker(held_release_s=release_s, state_sweep_every_s=0.0)
    refund = paypal_refund("PAYMENT.CAPTURE.REFUNDED", "R-LONE-1", CAPTURE, amount=700, total_refunded=700,
                           currency="USD", when=RECEIVED_AT)
    await cluster.publish([refund, neighbour(0)], received_at=RECEIVED_AT)
    await cluster.run(worker)
    assert entry(worker).held and entry(worker).payment is None, "the refund is held first"
    assert f"paypal:{CAPTURE}" not in local_states(worker.states)
    assert f"paypal:{refund.event_id}" not in emitted(cluster)
    await cluster.publish([neighbour(1)], received_at=RECEIVED_AT + HORIZON + timedelta(days=1))
    return cluster, worker, refund


async def held_then(release_s: int) -> tuple[Cluster, Worker, Delivery]:
    cluster, worker, refund = await held(release_s)
    await cluster.run(worker)
    return cluster, worker, refund


async def test_past_the_horizon_the_held_refund_becomes_its_captures_own_payment() -> None:
    cluster, worker, refund = await held_then(int(HORIZON.total_seconds()))

    state = local_states(worker.states)[f"paypal:{CAPTURE}"]
    assert (state.refunded_minor, state.version) == (700, 1)
    assert emitted(cluster)[f"paypal:{refund.event_id}"] == f"paypal:{CAPTURE}"
    assert entry(worker).payment == CAPTURE
    assert worker.pipeline.metrics.identity.labels("released")._value.get() == 1

    late = paypal_capture("PAYMENT.CAPTURE.COMPLETED", CAPTURE, order="O-LATE-1", amount=2000, currency="USD",
                          when=RECEIVED_AT)
    await cluster.publish([late], received_at=RECEIVED_AT + HORIZON + timedelta(days=2))
    await cluster.run(worker)
    states = local_states(worker.states)
    assert states["paypal:O-LATE-1"].refunded_minor == 0 and states[f"paypal:{CAPTURE}"].refunded_minor == 700
    assert worker.pipeline.metrics.identity.labels("conflict")._value.get() == 1


async def test_with_the_release_off_the_refund_waits_for_its_capture() -> None:
    cluster, worker, refund = await held_then(0)

    assert entry(worker).held and entry(worker).payment is None
    assert f"paypal:{CAPTURE}" not in local_states(worker.states)
    assert f"paypal:{refund.event_id}" not in emitted(cluster)


async def test_a_crash_before_the_release_is_sent_decides_it_again_after_the_restart() -> None:
    """The release batch is written locally and the worker dies before any send arrives (kill -9): the
    restarted worker on its own table releases again, and its changelog equals its table."""
    options = {"held_release_s": int(HORIZON.total_seconds()), "state_sweep_every_s": 0.0}
    cluster, worker, refund = await held(options["held_release_s"])
    doomed = cluster.next_batch()
    cluster.producer.lost.update({CHANGELOG, EVENTS, STATE, STATE_INPUT})
    task = asyncio.create_task(worker.pipeline.process(doomed))
    for _ in range(50):
        await asyncio.sleep(0)
    task.cancel()
    cluster.producer.lost.clear()
    assert entry(worker).payment is None, "the release is applied from its state-input record, not in place"

    restarted = cluster.worker(worker.states, **options)
    await cluster.run(restarted)
    assert entry(restarted).payment == CAPTURE
    assert local_states(restarted.states)[f"paypal:{CAPTURE}"].refunded_minor == 700
    assert emitted(cluster)[f"paypal:{refund.event_id}"] == f"paypal:{CAPTURE}"
    changelog = MemoryTable(cluster.producer, Ownership(), CHANGELOG)
    restore(changelog, set(range(PARTITIONS)))
    assert {p: d for p, d in changelog.data.items() if d} == {p: d for p, d in restarted.states.data.items() if d}


async def test_a_link_applied_before_the_release_record_arrives_wins_and_is_no_conflict() -> None:
    cluster, worker, refund = await held(int(HORIZON.total_seconds()))
    batch = cluster.next_batch()  # the neighbour: the sweep decides the release and sends its self-link
    await worker.pipeline.process(batch)
    cluster.commit(batch)
    assert len(cluster.producer.logs[STATE_INPUT]) > cluster.committed[STATE_INPUT], "a self-link is on its way"
    capture = paypal_capture("PAYMENT.CAPTURE.COMPLETED", CAPTURE, order="O-LINK-1", amount=2000, currency="USD",
                             when=RECEIVED_AT)
    await cluster.publish([capture], received_at=RECEIVED_AT + HORIZON + timedelta(days=1))
    raw = [m for m in cluster.next_batch() if m.topic != STATE_INPUT]  # the capture's link is applied first
    await worker.pipeline.process(raw)
    cluster.commit(raw)
    await cluster.run(worker)  # then the self-link arrives
    states = local_states(worker.states)
    assert states["paypal:O-LINK-1"].refunded_minor == 700 and f"paypal:{CAPTURE}" not in states
    assert emitted(cluster)[f"paypal:{refund.event_id}"] == "paypal:O-LINK-1"
    metrics = worker.pipeline.metrics.identity
    assert (metrics.labels("conflict")._value.get(), metrics.labels("released")._value.get()) == (0, 0)


async def test_sweeps_before_the_release_is_applied_send_it_once() -> None:
    """State-input lags: two more raw batches sweep the partition before the self-link is consumed."""
    cluster, worker, refund = await held(int(HORIZON.total_seconds()))
    for n in (1, 2, 3):
        if n > 1:
            await cluster.publish([neighbour(n)], received_at=RECEIVED_AT + HORIZON + timedelta(days=1, minutes=n))
        raw = [m for m in cluster.next_batch() if m.topic != STATE_INPUT]
        await worker.pipeline.process(raw)
        cluster.commit(raw)
    await cluster.run(worker)
    serde = payment_event_serde()
    keys = [serde.decode(r.value).event_key for r in cluster.producer.logs[STATE_INPUT]]
    assert sum(key.startswith("release:") for key in keys) == 1
    emitted_keys = [serde.decode(r.value).event_key for r in cluster.producer.logs[EVENTS]]
    assert emitted_keys.count(f"paypal:{refund.event_id}") == 1
