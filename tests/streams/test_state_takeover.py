"""Kill between the local write and the changelog ack, restart in place, hand over: states stay exact.

Deterministic and in-process (the broker and each worker's RocksDB are in-memory stand-ins,
`tests/streams/memory.py`). Worker A applies one state-input batch whose changelog records never
reach the broker and stops abruptly (its input offset is not committed, as after kill -9). A
restarts on its own local table, which is now newer than the changelog, and reads the batch again:
the replays re-send what they wrote. Then worker B, with no local copy (0 standbys), restores every
partition from the changelog and goes on with new events for the same payments. B's states, and the
newest state per payment on the state topic (what the sink keeps), equal the reference model: the
pure fold over every event.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from paystream.dev.scenarios import Delivery, scenario
from schemas.records import PaymentState, WebhookEnvelope
from schemas.serde import envelope_serde, payment_event_serde, payment_state_serde
from schemas.topics import partition_for
from streams.applied import APPLIED_KEY, unpack_offset
from streams.dlq import DeadLetters
from streams.metrics import WorkerMetrics
from streams.normalize import normalize
from streams.pipeline import Pipeline
from streams.state import fold_all
from tests.streams.memory import PARTITIONS, MemoryTable, Message, Ownership, Producer, restore
from tests.streams.test_recovery import follow_ups

RAW, EVENTS, STATE, STATE_INPUT, DLQ = "raw", "events", "state", "state-input", "dlq"
CHANGELOG = "payment-state-changelog"
BATCH = 25


@dataclass
class Worker:
    """One worker process: its own local tables, the shared broker, and its stage-2 consumer position."""

    pipeline: Pipeline
    states: MemoryTable

    @property
    def producer(self) -> Producer:
        return self.pipeline.app.producer  # type: ignore[no-any-return]


@dataclass
class Cluster:
    """The broker (one producer's logs) and the committed stage-2 offset (one consumer group)."""

    producer: Producer
    committed: int = 0

    def worker(self, states: MemoryTable | None = None) -> Worker:
        app = type("App", (), {"producer": self.producer})()
        ownership = Ownership()
        table = states or MemoryTable(self.producer, ownership, CHANGELOG)
        metrics = WorkerMetrics(CollectorRegistry())
        pipeline = Pipeline(app, events_topic=EVENTS, state_topic=STATE, state_input_topic=STATE_INPUT,
                            dedup=MemoryTable(self.producer, ownership, "dedup-changelog"),  # type: ignore[arg-type]
                            states=table,  # type: ignore[arg-type]
                            dead_letters=DeadLetters(app, DLQ, metrics=metrics), metrics=metrics,
                            envelope_serde=envelope_serde(), event_serde=payment_event_serde(),
                            state_serde=payment_state_serde(), dedup_ttl_s=3600, partitions=PARTITIONS)
        return Worker(pipeline, table)

    def raw(self, delivery: Delivery) -> Message:
        envelope = envelope_of(delivery)
        key = envelope.key.encode()
        partition = partition_for(key, PARTITIONS)
        return Message(RAW, partition, self.producer.offset(RAW, partition), key, envelope_serde().encode(envelope))

    def next_batch(self) -> list[Message]:
        return self.producer.logs[STATE_INPUT][self.committed:self.committed + BATCH]

    async def run(self, worker: Worker, deliveries: list[Delivery]) -> None:
        """Stage 1 over the deliveries, then stage 2 until the state-input topic is consumed (and committed)."""
        await worker.pipeline.process_raw([self.raw(d) for d in deliveries])
        while batch := self.next_batch():
            await worker.pipeline.process_state_input(batch)
            self.committed += len(batch)


def envelope_of(delivery: Delivery) -> WebhookEnvelope:
    return WebhookEnvelope(envelope_id=f"env-{delivery.event_id}", provider=delivery.provider,
                           source=delivery.provider, provider_event_id=delivery.event_id,
                           event_type=delivery.event_type, received_at=datetime(2026, 12, 1, tzinfo=UTC),
                           verified_by="test", body=delivery.body, content_type="application/json")


def stories(count: int, seed: int) -> list[Delivery]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    out: list[Delivery] = []
    for n in range(count):
        provider = rng.choice(["stripe", "paypal"])
        out += scenario(rng.choice(["checkout", "refund", "dispute"]), provider, start=start + timedelta(minutes=n),
                        rng=rng, amount=rng.randint(100, 50_000), currency=rng.choice(["USD", "EUR", "JPY"]))
    return out


def bare(state: PaymentState) -> PaymentState:
    return replace(state, traceparent=None)


def local_states(table: MemoryTable) -> dict[str, PaymentState]:
    serde = payment_state_serde()
    return {key.decode(): bare(serde.decode(value)) for partition in table.partitions()
            for key, value in table.data[partition].items() if not key.startswith(b"\x00")}


def newest_outputs(producer: Producer) -> dict[str, PaymentState]:
    """What the sink keeps: per payment, the state with the highest version on the state topic."""
    newest: dict[str, PaymentState] = {}
    for record in producer.logs[STATE]:
        state = bare(payment_state_serde().decode(record.value))
        if state.payment_key not in newest or state.version > newest[state.payment_key].version:
            newest[state.payment_key] = state
    return newest


async def test_kill_between_local_write_and_changelog_ack_then_restart_then_takeover_matches_the_model() -> None:
    cluster = Cluster(Producer())
    first = stories(30, seed=3)
    a = cluster.worker()
    await cluster.run(a, first[:len(first) // 2])

    # A applies the next batch locally; its changelog records never arrive, and A dies before the commit
    await a.pipeline.process_raw([cluster.raw(d) for d in first[len(first) // 2:]])
    doomed = cluster.next_batch()
    assert len(doomed) == BATCH
    cluster.producer.lost.add(CHANGELOG)
    task = asyncio.create_task(a.pipeline.process_state_input(doomed))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done()  # waiting for acknowledgements that will never come
    task.cancel()
    cluster.producer.lost.clear()
    marks = {p: unpack_offset(a.states.get(p, APPLIED_KEY)) for p in range(PARTITIONS)}
    assert max(marks.values()) >= doomed[-1].offset - BATCH, "the local write happened"
    from_changelog = MemoryTable(cluster.producer, Ownership(), CHANGELOG)
    restore(from_changelog, set(range(PARTITIONS)))
    stale = {k for k, v in local_states(a.states).items() if local_states(from_changelog).get(k) != v}
    assert stale, "the local copy must be newer than the changelog, or this test proves nothing"

    # restart in place: the same local table, the uncommitted batch is read again
    a = cluster.worker(a.states)
    await cluster.run(a, [])
    restore(from_changelog, set(range(PARTITIONS)))
    assert local_states(from_changelog) == local_states(a.states), "the replays re-sent every stale state"

    # hand every partition to B (0 standbys: it restores from the changelog alone), then more events
    b_table = MemoryTable(cluster.producer, Ownership(), CHANGELOG)
    restore(b_table, set(range(PARTITIONS)))
    b = cluster.worker(b_table)
    second = follow_ups(first, seed=4)
    assert second
    await cluster.run(b, second)

    reference = {key: bare(state) for key, state in
                 fold_all([normalize(envelope_of(d)) for d in first + second]).items()}
    assert local_states(b.states) == reference
    assert newest_outputs(cluster.producer) == reference
    assert not cluster.producer.logs[DLQ]
