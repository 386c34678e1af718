"""The stages against in-memory stand-ins: who may touch a state partition, and in what order.

These pin the takeover rules that a real two-worker run only hits by timing:
- nothing reads or writes a payment's state while the worker's tables are not restored
  (a rebalance is under way): the event goes to the state-input topic for later;
- one writer per state partition: the worker's one agent reads raw and state-input records and
  applies both in one pass per batch, so the changelog keeps the order of the local writes
  and recovery (last record per key wins) rebuilds the state the writer had;
- a state-input record at or below its partition's applied mark re-sends what it wrote.

And failure isolation: a record that fails in any stage is a dead letter and the batch goes on;
a delivery that fails leaves no dedup sighting, so re-reading the batch re-emits it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from paystream.dev.scenarios import Delivery, scenario, stripe_payment_intent, stripe_refund
from schemas.dlq import ATTEMPTS, DeadLetterInfo, parse_dlq_headers
from schemas.records import PaymentState, WebhookEnvelope
from schemas.serde import envelope_serde, payment_event_serde, payment_state_serde
from schemas.topics import partition_for
from streams import state_stage
from streams.applied import APPLIED_KEY, unpack_offset
from streams.dedup import Sighting
from streams.dlq import DeadLetters
from streams.metrics import WorkerMetrics
from streams.normalize import normalize
from streams.partitioned import PartitionedTable
from streams.pipeline import SOURCE_HEADER, Pipeline
from tests.streams.memory import PARTITIONS, MemoryTable, Message, Ownership, Producer

RAW, EVENTS, STATE, STATE_INPUT, DLQ = "raw", "events", "state", "state-input", "dlq"
CHANGELOG = "payment-state-changelog"


@dataclass
class Harness:
    pipeline: Pipeline
    producer: Producer
    states: MemoryTable
    ownership: Ownership

    def raw(self, delivery: Delivery, received_at: datetime | None = None) -> Message:
        envelope = self._envelope(delivery)
        if received_at is not None:
            envelope.received_at = received_at
        key = envelope.key.encode()
        return self._message(RAW, partition_for(key, PARTITIONS), key, envelope_serde().encode(envelope))

    def state_input(self, delivery: Delivery) -> Message:
        event = normalize(self._envelope(delivery))
        key = event.payment_key.encode()
        return self._message(STATE_INPUT, partition_for(key, PARTITIONS), key, payment_event_serde().encode(event),
                             [("paystream.source", b"1:7")])

    def state(self, payment_key: str) -> PaymentState | None:
        key = payment_key.encode()
        raw = self.states.get(partition_for(key, PARTITIONS), key)
        return payment_state_serde().decode(raw) if raw else None

    def changelog_state(self, payment_key: str) -> PaymentState | None:
        """What recovery would rebuild: the last changelog record of the key."""
        records = [m for m in self.producer.logs[CHANGELOG] if m.key == payment_key.encode()]
        return payment_state_serde().decode(records[-1].value) if records else None

    def _envelope(self, delivery: Delivery) -> WebhookEnvelope:
        return WebhookEnvelope(envelope_id=f"env-{delivery.event_id}", provider=delivery.provider,
                               source=delivery.provider, provider_event_id=delivery.event_id,
                               event_type=delivery.event_type, received_at=datetime.now(UTC),
                               verified_by="test", body=delivery.body, content_type="application/json")

    def _message(self, topic: str, partition: int, key: bytes, value: bytes,
                 headers: list[tuple[str, bytes]] | None = None) -> Message:
        return Message(topic, partition, self.producer.offset(topic, partition), key, value, headers or [])


def make_harness() -> Harness:
    producer, ownership = Producer(), Ownership()
    app = type("App", (), {"producer": producer})()
    states = MemoryTable(producer, ownership, CHANGELOG)
    metrics = WorkerMetrics(CollectorRegistry())
    pipeline = Pipeline(app, events_topic=EVENTS, state_topic=STATE, state_input_topic=STATE_INPUT,
                        dedup=MemoryTable(producer, ownership, "dedup-changelog"), states=states,  # type: ignore[arg-type]
                        dead_letters=DeadLetters(app, DLQ, metrics=metrics), metrics=metrics,
                        envelope_serde=envelope_serde(), event_serde=payment_event_serde(),
                        state_serde=payment_state_serde(), dedup_ttl_s=3600, partitions=PARTITIONS)
    return Harness(pipeline, producer, states, ownership)


def card_payment() -> list[Delivery]:
    return list(scenario("checkout", "stripe", start=datetime(2026, 11, 1, tzinfo=UTC), amount=5000, currency="USD"))


def refund_of(payment: Delivery, refund_id: str, amount: int) -> Delivery:
    return stripe_refund("refund.created", refund_id, payment.payment_id, "ch_x", amount=amount, currency="USD",
                         created=int(datetime(2026, 11, 20, tzinfo=UTC).timestamp()))


async def test_an_event_for_a_table_that_is_not_restored_goes_to_the_state_input_topic_untouched() -> None:
    h = make_harness()
    deliveries = card_payment()
    h.ownership.ready = False  # a rebalance is under way
    await h.pipeline.process_raw([h.raw(d) for d in deliveries])
    payment_key = f"stripe:{deliveries[0].payment_id}"
    assert h.state(payment_key) is None
    assert len(h.producer.logs[EVENTS]) == len(deliveries)
    assert len(h.producer.logs[STATE_INPUT]) == len(deliveries)
    assert not h.producer.logs[STATE] and not h.producer.logs[CHANGELOG]

    forwarded = list(h.producer.logs[STATE_INPUT])
    h.producer.logs[STATE_INPUT].clear()
    await h.pipeline.process_state_input(forwarded)  # reached us again, still not ready: sent on again
    assert [(m.key, m.value, m.headers) for m in h.producer.logs[STATE_INPUT]] == \
        [(m.key, m.value, m.headers) for m in forwarded]
    assert h.state(payment_key) is None

    h.ownership.ready = True  # recovery done: the owner applies them
    await h.pipeline.process_state_input(list(h.producer.logs[STATE_INPUT]))
    state = h.state(payment_key)
    assert state is not None and state.status == "succeeded" and state.version == len(deliveries)
    assert h.changelog_state(payment_key) == state


async def test_an_event_for_a_partition_another_worker_owns_is_routed_to_it() -> None:
    h = make_harness()
    deliveries = card_payment()
    payment_key = f"stripe:{deliveries[0].payment_id}"
    partition = partition_for(payment_key.encode(), PARTITIONS)
    h.ownership.actives = frozenset(range(PARTITIONS)) - {partition}
    await h.pipeline.process_raw([h.raw(d) for d in deliveries])
    assert h.state(payment_key) is None
    assert {m.partition for m in h.producer.logs[STATE_INPUT]} == {partition}
    h.ownership.actives = frozenset({partition})
    await h.pipeline.process_raw([h.raw(d) for d in deliveries])  # retries: duplicates, nothing applied
    assert h.state(payment_key) is None


async def test_raw_and_state_input_records_of_one_batch_are_one_write_and_one_output_per_payment() -> None:
    """The worker's one agent reads both topics: the events of both are applied in one pass, so the payment
    gets one local write, one changelog record and one state output, in the same order."""
    h = make_harness()
    deliveries = card_payment()
    payment_key = f"stripe:{deliveries[0].payment_id}"
    refund = refund_of(deliveries[0], "re_1", 1000)
    await h.pipeline.process([*(h.raw(d) for d in deliveries), h.state_input(refund)])
    state = h.state(payment_key)
    assert state is not None and state.version == len(deliveries) + 1 and state.refunded_minor == 1000
    assert [m.key for m in h.producer.logs[CHANGELOG] if m.key == payment_key.encode()] == [payment_key.encode()]
    assert [payment_state_serde().decode(m.value) for m in h.producer.logs[STATE]] == [state]
    assert h.changelog_state(payment_key) == state
    assert not h.producer.logs[STATE_INPUT]  # nothing took the extra hop


async def test_a_state_input_record_on_the_wrong_partition_is_applied_under_its_payments_partition() -> None:
    h = make_harness()
    payment = card_payment()[0]
    payment_key = f"stripe:{payment.payment_id}".encode()
    target = partition_for(payment_key, PARTITIONS)
    other = next(p for p in range(PARTITIONS) if p != target)
    event = normalize(h._envelope(payment))
    await h.pipeline.process_state_input([h._message(STATE_INPUT, other, payment_key,
                                                     payment_event_serde().encode(event))])
    assert not h.states.data[other]  # not even an applied mark: nothing of that partition was applied
    state = h.state(payment_key.decode())
    assert state is not None and state.version == 1


def test_one_agent_reads_raw_and_state_input_records_the_only_writer_of_the_state_table(tmp_path: Any) -> None:
    from paystream.core.settings import Settings
    from streams.app import create_worker

    settings = Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path, reconciliation=False)
    worker = create_worker(settings)
    readers = {name: set(agent.channel.topics) for name, agent in worker.app.agents.items()}
    assert [topics for topics in readers.values() if settings.topics.state_input in topics] == \
        [{settings.topics.raw, settings.topics.state_input}]
    assert [agent.concurrency for agent in worker.app.agents.values()] == [1]


def test_a_table_owns_nothing_until_faust_says_the_actives_are_restored() -> None:
    from faust.types import TP

    class Assignor:
        def assigned_actives(self) -> set[TP]:
            return {TP(CHANGELOG, 1), TP(CHANGELOG, 3), TP("some-other-topic", 2)}

    tables = type("Tables", (), {"actives_ready": False})()
    app = type("App", (), {"tables": tables, "assignor": Assignor()})()
    changelog = type("Changelog", (), {"get_topic_name": lambda self: CHANGELOG})()
    table = PartitionedTable(app, type("Table", (), {"changelog_topic": changelog})())
    assert table.owned_partitions() == frozenset()
    tables.actives_ready = True
    assert table.owned_partitions() == frozenset({1, 3})


# Failure isolation -------------------------------------------------------------------------------------


def checkout(payment_id: str) -> list[Delivery]:
    t = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp())
    return [stripe_payment_intent(f"payment_intent.{kind}", payment_id, amount=5000, currency="USD", created=t + i)
            for i, kind in enumerate(("created", "processing", "succeeded"))]


def letters(h: Harness) -> list[tuple[DeadLetterInfo, Message]]:
    return [(parse_dlq_headers(m.headers), m) for m in h.producer.logs[DLQ]]


async def test_a_bad_record_in_every_stage_one_batch_is_a_dead_letter_and_the_rest_is_applied(
        monkeypatch: pytest.MonkeyPatch) -> None:
    h = make_harness()
    good, poisoned, unreadable = checkout("pi_good"), checkout("pi_poisoned"), checkout("pi_unreadable")
    unreadable_key = b"stripe:pi_unreadable"
    h.states.data[partition_for(unreadable_key, PARTITIONS)][unreadable_key] = b"\x00not a state"
    corrupt_sighting = h.raw(good[2])  # its stored dedup sighting is not 44 bytes: stage dedup
    h.pipeline.dedup.data[corrupt_sighting.partition][corrupt_sighting.key] = b"short"  # type: ignore[attr-defined]
    original = state_stage.apply_event

    def apply_event(state: PaymentState | None, event: Any) -> PaymentState | None:
        if event.payment_id == "pi_poisoned" and event.event_type.endswith("processing"):
            raise ZeroDivisionError("a bug in the state machine")
        return original(state, event)

    monkeypatch.setattr(state_stage, "apply_event", apply_event)
    batch = [h.raw(good[0]), h._message(RAW, 0, b"stripe:evt_null", None),  # type: ignore[arg-type]
             h.raw(good[1]), h._message(RAW, 1, b"stripe:evt_garbage", b"garbage"), corrupt_sighting,
             *(h.raw(d) for d in poisoned), *(h.raw(d) for d in unreadable)]
    await h.pipeline.process_raw(batch)

    found = sorted((info.stage, info.reason or "", m.key) for info, m in letters(h))
    assert found == sorted([("decode", "", b"stripe:evt_null"), ("decode", "", b"stripe:evt_garbage"),
                            ("dedup", "", corrupt_sighting.key), ("state", "", b"stripe:pi_poisoned"),
                            *[("state", "unreadable_state", unreadable_key)] * 3])
    good_state = h.state("stripe:pi_good")
    assert good_state is not None and good_state.version == 2  # the third event is the dedup dead letter
    poisoned_state = h.state("stripe:pi_poisoned")
    assert poisoned_state is not None and poisoned_state.version == 2 and poisoned_state.status == "succeeded"
    assert h.changelog_state("stripe:pi_poisoned") == poisoned_state
    # every event that normalized went out once; the state failures do not take it back
    assert len(h.producer.logs[EVENTS]) == 2 + 3 + 3
    for info, message in letters(h):
        assert info.attempts == 1 and info.original_topic == RAW
        if info.stage == "state":  # the event itself, for the state-input topic: its raw record is deduplicated
            assert info.replay_topic == STATE_INPUT
            event = payment_event_serde().decode(message.value)
            assert event.payment_key.encode() == message.key
            assert dict(message.headers)[SOURCE_HEADER] == f"{info.original_partition}:{info.original_offset}".encode()
        else:
            assert info.replay_topic is None


async def test_a_state_dead_letter_replayed_to_the_state_input_topic_is_applied_or_counts_another_attempt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    h = make_harness()
    deliveries = checkout("pi_replay")
    broken = {"on": True}
    original = state_stage.apply_event

    def apply_event(state: PaymentState | None, event: Any) -> PaymentState | None:
        if broken["on"] and event.event_type.endswith("succeeded"):
            raise RuntimeError("not yet fixed")
        return original(state, event)

    monkeypatch.setattr(state_stage, "apply_event", apply_event)
    await h.pipeline.process_raw([h.raw(d) for d in deliveries])
    [(info, letter)] = letters(h)

    def replayed(info: DeadLetterInfo, letter: Message) -> Message:  # what `paystream dlq replay` sends
        assert info.replay_topic is not None
        headers = [(k, v) for k, v in letter.headers if not k.startswith("dlq.")]
        headers.append((ATTEMPTS, str(info.attempts).encode()))
        return h._message(info.replay_topic, partition_for(letter.key or b"", PARTITIONS), letter.key or b"",
                          letter.value, headers)

    await h.pipeline.process_state_input([replayed(info, letter)])  # replayed before the fix: fails again
    [_, (again, second)] = letters(h)
    assert (again.stage, again.attempts, again.original_topic, again.replay_topic) == ("state", 2, STATE_INPUT,
                                                                                      STATE_INPUT)
    assert second.value == letter.value
    broken["on"] = False
    await h.pipeline.process_state_input([replayed(again, second)])
    state = h.state("stripe:pi_replay")
    assert state is not None and state.status == "succeeded" and state.version == 3
    assert len(letters(h)) == 2
    assert len(h.producer.logs[EVENTS]) == 3  # applied, not emitted again


async def test_a_failed_delivery_writes_no_sighting_and_the_batch_read_again_is_emitted() -> None:
    h = make_harness()
    deliveries = checkout("pi_retry")
    batch = [h.raw(d) for d in deliveries]
    h.producer.failing.update({EVENTS, CHANGELOG})
    with pytest.raises(TimeoutError):
        await h.pipeline.process_raw(batch)
    assert not any(h.pipeline.dedup.data.values())  # type: ignore[attr-defined]
    assert not h.producer.logs["dedup-changelog"]
    h.producer.failing.clear()  # the worker restarted from the last commit: the same records again
    await h.pipeline.process_raw(batch)
    sources = {dict(m.headers)[SOURCE_HEADER] for m in h.producer.logs[EVENTS]}
    assert sources == {f"{m.partition}:{m.offset}".encode() for m in batch}
    state = h.state("stripe:pi_retry")
    assert state is not None and state.version == 3
    assert h.changelog_state("stripe:pi_retry") == state  # the changelog has it although the first send failed
    retry = h.raw(deliveries[0])  # a provider retry at a new offset: a duplicate now
    await h.pipeline.process_raw([retry])
    assert h.pipeline.stats.duplicates == 1 and len(h.producer.logs[EVENTS]) == 3


async def test_state_input_records_whose_changelog_send_failed_are_replays_when_read_again() -> None:
    """The state-input path: the batch wrote locally (states and applied mark), the changelog was not
    acknowledged; read again, the records are at or below the mark and re-send the stored state."""
    h = make_harness()
    records = [h.state_input(d) for d in checkout("pi_again")]
    h.producer.failing.add(CHANGELOG)
    with pytest.raises(TimeoutError):
        await h.pipeline.process_state_input(records)
    state = h.state("stripe:pi_again")
    partition = partition_for(b"stripe:pi_again", PARTITIONS)
    assert state is not None and state.version == 3 and h.changelog_state("stripe:pi_again") is None
    assert unpack_offset(h.states.get(partition, APPLIED_KEY)) == records[-1].offset
    h.producer.failing.clear()
    await h.pipeline.process_state_input(records)  # the worker restarted from the last commit
    assert h.state("stripe:pi_again") == state and h.changelog_state("stripe:pi_again") == state
    [mark] = [m for m in h.producer.logs[CHANGELOG] if m.key == APPLIED_KEY]
    assert unpack_offset(mark.value) == records[-1].offset
    assert payment_state_serde().decode(h.producer.logs[STATE][-1].value) == state  # the output too


async def test_the_dedup_table_holds_about_one_ttl_of_sightings_however_long_traffic_runs() -> None:
    """Expiry rides on the batches (`DEDUP_SWEEP_VISITS`): four TTLs of steady traffic leave at most ~4/3 of a
    TTL's sightings, never one that is still inside the TTL, and a provider retry inside it is still a duplicate."""
    h = make_harness()  # TTL 3600 s
    start, step, per_batch = datetime(2026, 11, 1, tzinfo=UTC), timedelta(seconds=60), 20
    seen: dict[bytes, tuple[int, int]] = {}  # key -> (partition, received ms)
    sent: dict[bytes, Delivery] = {}
    n = 0
    for batch_no in range(4 * 60):  # a batch a minute for four hours
        received_at = start + batch_no * step
        batch = []
        for _ in range(per_batch):
            n += 1
            delivery = stripe_payment_intent("payment_intent.created", f"pi_{n}", amount=100, currency="USD",
                                             created=int(received_at.timestamp()), event_id=f"evt_{n}")
            message = h.raw(delivery, received_at)
            seen[message.key] = (message.partition, int(received_at.timestamp() * 1000))
            sent[message.key] = delivery
            batch.append(message)
        await h.pipeline.process_raw(batch)

    dedup: MemoryTable = h.pipeline.dedup  # type: ignore[assignment]
    kept = {key for entries in dedup.data.values() for key in entries}
    per_ttl = 60 * per_batch
    assert len(kept) <= per_ttl * 4 / 3 + 4 * per_batch, len(kept)
    assert h.pipeline.stats.expired == n - len(kept)
    for key, (partition, received_ms) in seen.items():
        inside = received_ms >= h.pipeline.stats.watermark_ms[partition] - 3600 * 1000
        assert key in kept or not inside, key  # nothing inside the TTL is gone
    for partition, entries in dedup.data.items():
        assert all(Sighting.unpack(value).partition == partition for value in entries.values())

    oldest_kept = next(key for key in seen if key in kept)  # the provider retries it, just inside the TTL
    await h.pipeline.process_raw([h.raw(sent[oldest_kept], start + 240 * step)])
    assert (h.pipeline.stats.duplicates, h.pipeline.stats.conflicts) == (1, 0)
