"""Kill between the local write and the changelog ack, restart in place, hand over: states stay exact.

Deterministic and in-process (the broker and each worker's RocksDB are in-memory stand-ins,
`tests/streams/memory.py`). Worker A applies one batch (raw records, and events another worker
routed to it on the state-input topic) whose changelog records never reach the broker, and stops
abruptly (its input offsets are not committed, as after kill -9). A restarts on its own local table,
which is now newer than the changelog, and reads the batch again: the replays (raw records without a
dedup sighting yet, state-input records at or below the applied mark) re-send what they wrote.
Then worker B, with no local copy (0 standbys), restores every partition from the changelog and
goes on with new events for the same payments. B's states, and the newest state per payment on the
state topic (what the sink keeps), equal the reference model: the pure fold over every event.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from paystream.dev.scenarios import Delivery, scenario
from schemas.records import PaymentState, WebhookEnvelope
from schemas.serde import envelope_serde, payment_event_serde, payment_state_serde
from schemas.topics import partition_for
from streams.applied import APPLIED_KEY, unpack_offset
from streams.dlq import DeadLetters
from streams.identity import identify
from streams.metrics import WorkerMetrics
from streams.normalize import normalize
from streams.pipeline import Pipeline
from streams.state import fold_all
from tests.streams.memory import PARTITIONS, MemoryTable, Message, Ownership, Producer, restore
from tests.streams.test_recovery import follow_ups

RAW, EVENTS, STATE, STATE_INPUT, DLQ = "raw", "events", "state", "state-input", "dlq"
CHANGELOG = "payment-state-changelog"
BATCH = 25
RECEIVED_AT = datetime(2026, 12, 1, tzinfo=UTC)


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
    """The broker (one producer's logs) and the worker group's committed positions on raw and state-input."""

    producer: Producer
    committed: dict[str, int] = field(default_factory=lambda: {RAW: 0, STATE_INPUT: 0})

    def worker(self, states: MemoryTable | None = None, ownership: Ownership | None = None, **options: Any) -> Worker:
        app = type("App", (), {"producer": self.producer})()
        ownership = ownership or Ownership()
        table = states or MemoryTable(self.producer, ownership, CHANGELOG)
        metrics = WorkerMetrics(CollectorRegistry())
        pipeline = Pipeline(app, events_topic=EVENTS, state_topic=STATE, state_input_topic=STATE_INPUT,
                            dedup=MemoryTable(self.producer, ownership, "dedup-changelog"),  # type: ignore[arg-type]
                            states=table,  # type: ignore[arg-type]
                            dead_letters=DeadLetters(app, DLQ, metrics=metrics), metrics=metrics,
                            envelope_serde=envelope_serde(), event_serde=payment_event_serde(),
                            state_serde=payment_state_serde(), dedup_ttl_s=3600, partitions=PARTITIONS,
                            **options)
        return Worker(pipeline, table)

    async def publish(self, raw: list[Delivery], routed: list[Delivery] = (),  # type: ignore[assignment]
                      received_at: datetime = RECEIVED_AT) -> None:
        """Raw records from the ingress, and events another worker's stage 1 routed to the state-input topic."""
        for delivery in raw:
            envelope = envelope_of(delivery, received_at)
            key = envelope.key.encode()
            await self.producer.send(RAW, key, envelope_serde().encode(envelope), partition_for(key, PARTITIONS),
                                     None, [])
        for delivery in routed:
            event = normalize(envelope_of(delivery, received_at))
            identity = identify(event)
            key = f"{event.provider}:{identity.payment or identity.alias}".encode()
            await self.producer.send(STATE_INPUT, key, payment_event_serde().encode(event),
                                     partition_for(key, PARTITIONS), None, [])

    def next_batch(self) -> list[Message]:
        """Up to BATCH records of each topic from the committed positions (one `take_events` batch)."""
        return [m for topic in (RAW, STATE_INPUT)
                for m in self.producer.logs[topic][self.committed[topic]:self.committed[topic] + BATCH]]

    def commit(self, batch: list[Message]) -> None:
        for message in batch:
            self.committed[message.topic] += 1

    async def run(self, worker: Worker) -> None:
        """The worker's agent until both topics are consumed, committing after each batch."""
        while batch := self.next_batch():
            await worker.pipeline.process(batch)
            self.commit(batch)


def envelope_of(delivery: Delivery, received_at: datetime = RECEIVED_AT) -> WebhookEnvelope:
    return WebhookEnvelope(envelope_id=f"env-{delivery.event_id}", provider=delivery.provider,
                           source=delivery.provider, provider_event_id=delivery.event_id,
                           event_type=delivery.event_type, received_at=received_at,
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
    half = len(first) // 2
    a = cluster.worker()
    await cluster.publish(first[:half])
    await cluster.run(a)

    # A applies the next batch (raw records, and events routed to it) locally; its changelog records never
    # arrive, and A dies before the commit
    await cluster.publish(first[half::2], routed=first[half + 1::2])
    doomed = cluster.next_batch()
    assert {m.topic for m in doomed} == {RAW, STATE_INPUT}
    cluster.producer.lost.add(CHANGELOG)
    task = asyncio.create_task(a.pipeline.process(doomed))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done()  # waiting for acknowledgements that will never come
    task.cancel()
    cluster.producer.lost.clear()
    assert any(unpack_offset(a.states.get(p, APPLIED_KEY)) >= 0 for p in range(PARTITIONS)), "the mark was written"
    from_changelog = MemoryTable(cluster.producer, Ownership(), CHANGELOG)
    restore(from_changelog, set(range(PARTITIONS)))
    stale = {k for k, v in local_states(a.states).items() if local_states(from_changelog).get(k) != v}
    assert stale, "the local copy must be newer than the changelog, or this test proves nothing"

    # restart in place: the same local table; the uncommitted batch is read again
    a = cluster.worker(a.states)
    await cluster.run(a)
    restore(from_changelog, set(range(PARTITIONS)))
    assert local_states(from_changelog) == local_states(a.states), "the replays re-sent every stale state"
    assert {k: v for k, v in from_changelog.data.items()} == {k: v for k, v in a.states.data.items()}

    # hand every partition to B (0 standbys: it restores from the changelog alone), then more events
    b_table = MemoryTable(cluster.producer, Ownership(), CHANGELOG)
    restore(b_table, set(range(PARTITIONS)))
    b = cluster.worker(b_table)
    second = follow_ups(first, seed=4)
    assert second
    await cluster.publish(second[::2], routed=second[1::2])
    await cluster.run(b)

    reference = {key: bare(state) for key, state in
                 fold_all([normalize(envelope_of(d)) for d in first + second]).items()}
    assert local_states(b.states) == reference
    assert newest_outputs(cluster.producer) == reference
    assert not cluster.producer.logs[DLQ]
