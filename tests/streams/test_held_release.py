"""A held event whose payment no event ever names is released under the id it names, past the horizon.

In-process (tests/streams/memory.py stands in for the broker and the local RocksDB), with the pipeline's
real state stage: a PayPal refund names only its capture, and the capture's own event (which would say
which order it belongs to) never comes. Until `PAYSTREAM_HELD_RELEASE_S` of event time has passed on the
partition the refund is held (no state, nothing on payments.events.v1); after it, the capture is its own
payment: the refund is applied and emitted under it, as the reference model keys it. A capture event that
comes even later is a conflict, counted, and changes neither payment's refunds.
"""

from __future__ import annotations

from datetime import timedelta

from paystream.dev.scenarios import Delivery, paypal_capture, paypal_refund, stripe_payment_intent
from schemas.serde import payment_event_serde
from schemas.topics import partition_for
from streams.identity import ALIAS_PREFIX, AliasEntry
from tests.streams.memory import PARTITIONS, Producer
from tests.streams.test_state_takeover import EVENTS, RECEIVED_AT, Cluster, Worker, local_states

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


async def held_then(release_s: int) -> tuple[Cluster, Worker, Delivery]:
    """The refund held on day 0, then a neighbour's event on day 4."""
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
