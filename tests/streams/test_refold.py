"""A state folded by older money rules is folded again when one of its events is replayed.

`paystream state rebuild` replays a payment's events after an upgrade; the state keeps its events and
version and gets the current rules' numbers and `fold_revision`, which the sink lets replace the row
(`tests/connectors/test_divergence.py`). The digest below makes a change of the rules without a new
revision fail here, so no stored state keeps numbers nobody will ever fold again.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from datetime import timedelta

import orjson
import pytest

from schemas.records import PaymentState
from schemas.serde import payment_state_serde
from schemas.topics import partition_for
from streams import state_stage
from streams.fold import FOLD_REVISION
from streams.state import fold_all, refold
from tests.streams.memory import PARTITIONS, MemoryTable, Ownership, Producer, restore
from tests.streams.test_money import STORIES, events_of, row
from tests.streams.test_pipeline import CHANGELOG, STATE, card_payment, make_harness, refund_of
from tests.streams.test_state_takeover import CHANGELOG as TAKEOVER_CHANGELOG
from tests.streams.test_state_takeover import DLQ, RECEIVED_AT, STATE_INPUT, Cluster, bare, local_states, stories
from tests.streams.test_state_takeover import STATE as STATE_TOPIC

FOLDED_STORIES = (2, "3ef328c93c68d8c51ebe21f87af1570a6a0c774e70c2e206d300332bcc340caa")
"""(FOLD_REVISION, what `fold` computes for every story in `paystream/dev/stories/`). Revisions: 1, the rules
of 2026-12-07; 2, a PayPal dispute resolved with no outcome stated is closed (it was left open)."""


def stories_digest() -> str:
    """Every field `fold` decides, for every story's payments; not the history (normalization's work)."""
    digest = hashlib.sha256()
    for story in STORIES:
        for key, state in sorted(fold_all(events_of(story)).items()):
            data = state.to_avro()
            for name in ("history", "traceparent", "fold_revision"):
                del data[name]
            digest.update(orjson.dumps([story.name, key, data], option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def test_a_change_of_the_money_rules_comes_with_a_new_fold_revision() -> None:
    digest = stories_digest()
    assert (FOLD_REVISION, digest) == FOLDED_STORIES, (
        "what fold computes for the stories changed, or FOLD_REVISION did. If the money rules changed, bump "
        "streams.fold.FOLD_REVISION (workers then fold stored states again); if stories were only added, keep it. "
        f"Then pin FOLDED_STORIES = ({FOLD_REVISION}, {digest!r})")


def test_refold_recomputes_only_what_older_rules_folded() -> None:
    story = next(s for s in STORIES if s.expected.refunded)
    [state] = fold_all(events_of(story)).values()
    assert state.fold_revision == FOLD_REVISION and refold(state) is None
    stale = replace(state, fold_revision=0, refunded_minor=state.refunded_minor * 2, status="refunded",
                    traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    again = refold(stale)
    assert again == replace(state, traceparent=stale.traceparent)  # same events, same version, today's numbers
    assert again is not None and again.version == stale.version


def test_a_resolution_normalized_before_revision_2_is_closed_when_folded_again() -> None:
    """Revision 2 closes a PayPal dispute resolved with no outcome stated. The events stored before it carry no
    part for that resolution (the normalizer gave none), and a refold reads stored events, so the fold itself
    must read such a resolution as closed."""
    for name in ("paypal_dispute_resolved_without_outcome", "paypal_chargeback_closed_then_a_claim_lost"):
        story = next(s for s in STORIES if s.name == name)
        events = [replace(e, parts=[]) if e.event_type == "CUSTOMER.DISPUTE.RESOLVED" and e.status is None else e
                  for e in events_of(story)]
        assert events != events_of(story)
        [state] = fold_all(events).values()
        assert row(state) == story.expected.row(), name
        stale = replace(state, fold_revision=1, disputed_minor=state.amount_minor, dispute_status="open")
        again = refold(stale)
        assert again is not None and row(again) == story.expected.row(), name


async def test_a_replayed_event_folds_a_stale_state_again_and_sends_it_everywhere() -> None:
    h = make_harness()
    deliveries = card_payment()
    payment_key = f"stripe:{deliveries[0].payment_id}"
    key, partition = payment_key.encode(), partition_for(payment_key.encode(), PARTITIONS)
    refund = refund_of(deliveries[0], "re_1", 1000)
    await h.pipeline.process([*(h.raw(d) for d in deliveries), h.state_input(refund)])
    state = h.state(payment_key)
    assert state is not None and state.refunded_minor == 1000

    # what an older release left in the table: the same events, other numbers
    stale = replace(state, fold_revision=0, refunded_minor=2000, status="refunded")
    h.states.write_local(partition, {key: payment_state_serde().encode(stale)})
    h.producer.logs[STATE].clear()
    h.producer.logs[CHANGELOG].clear()
    await h.pipeline.process_state_input([h.state_input(refund)])  # `paystream state rebuild` replays it
    assert h.state(payment_key) == state
    assert h.changelog_state(payment_key) == state
    assert [payment_state_serde().decode(m.value) for m in h.producer.logs[STATE]] == [state]

    # folded by today's rules: a further replay re-sends the state as it is, and folds nothing
    h.producer.logs[STATE].clear()
    await h.pipeline.process_state_input([h.state_input(refund)])
    assert [payment_state_serde().decode(m.value) for m in h.producer.logs[STATE]] == [state]
    transitions = {s.labels["outcome"]: s.value for m in h.pipeline.metrics.transitions.collect()
                   for s in m.samples if s.name.endswith("_total")}
    assert transitions.get("refolded") == 1


def age_the_table(table: MemoryTable) -> dict[str, PaymentState]:
    """Make every payment state look folded by an older release (other numbers, revision 0); returns the
    states as today's rules fold them."""
    serde = payment_state_serde()
    today = local_states(table)
    for partition in table.partitions():
        for key, value in list(table.data[partition].items()):
            if not key.startswith(b"\x00"):
                state = serde.decode(value)
                table.data[partition][key] = serde.encode(
                    replace(state, fold_revision=0, refunded_minor=state.refunded_minor + 1))
    aged = local_states(table)
    assert today and all(aged[key] != state for key, state in today.items())
    return today


async def test_the_sweep_folds_again_every_state_older_rules_folded_with_no_event_for_it() -> None:
    """After an upgrade the rows come right by themselves: traffic for other payments drives the sweep, which
    folds each stale state it visits again and sends it to the changelog and the state topic."""
    cluster = Cluster(Producer())
    worker = cluster.worker(state_sweep_every_s=0.0)
    await cluster.publish(stories(24, seed=51))
    await cluster.run(worker)
    today = age_the_table(worker.states)
    sent = len(cluster.producer.logs[STATE_TOPIC])

    for seed in range(52, 62):  # until every partition has had traffic (only those are swept)
        await cluster.publish(stories(24, seed=seed), received_at=RECEIVED_AT + timedelta(hours=1))
        await cluster.run(worker)
        states = local_states(worker.states)
        if {key: states[key] for key in today} == today:
            break
    assert {key: states[key] for key in today} == today
    restored = MemoryTable(cluster.producer, Ownership(), TAKEOVER_CHANGELOG)
    restore(restored, set(range(PARTITIONS)))
    assert local_states(restored) == states
    outputs = [bare(payment_state_serde().decode(r.value)) for r in cluster.producer.logs[STATE_TOPIC][sent:]]
    assert {s.payment_key: s for s in outputs if s.payment_key in today} == today
    assert worker.pipeline.metrics.transitions.labels("refolded")._value.get() == len(today)


async def test_a_state_that_cannot_be_folded_again_stays_and_the_sweep_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(Producer())
    worker = cluster.worker(state_sweep_every_s=0.0)
    await cluster.publish(stories(12, seed=53))
    await cluster.run(worker)
    today = age_the_table(worker.states)
    broken = sorted(today)[0]

    def refold_but_one(state: PaymentState) -> PaymentState | None:
        if state.payment_key == broken:
            raise ValueError("a bug in the money rules")
        return refold(state)

    monkeypatch.setattr(state_stage, "refold", refold_but_one)
    rest = {key: state for key, state in today.items() if key != broken}
    for seed in range(54, 64):  # until every partition has had traffic (only those are swept)
        await cluster.publish(stories(12, seed=seed), received_at=RECEIVED_AT + timedelta(hours=1))
        await cluster.run(worker)
        states = local_states(worker.states)
        if {key: states[key] for key in rest} == rest and states[broken].fold_revision == 0 \
                and cluster.producer.logs[DLQ]:
            break
    assert states[broken].fold_revision == 0
    assert {key: states[key] for key in rest} == rest
    [letter] = cluster.producer.logs[DLQ]  # once, not once per sweep round
    assert letter.key == broken.encode()


async def test_a_refold_whose_sends_never_arrived_is_sent_again_after_a_restart() -> None:
    """The sweep asks through the state-input topic, so a worker that dies after folding a state again
    locally, before its changelog and state records arrive, replays the request and sends the state."""
    cluster = Cluster(Producer())
    worker = cluster.worker(state_sweep_every_s=0.0)
    await cluster.publish(stories(24, seed=55))
    await cluster.run(worker)
    today = age_the_table(worker.states)
    for partition in worker.states.partitions():  # the older release had sent its states too
        for key, value in worker.states.data[partition].items():
            if not key.startswith(b"\x00"):
                await cluster.producer.send(TAKEOVER_CHANGELOG, key, value, partition, None, [])
                await cluster.producer.send(STATE_TOPIC, key, value, partition, None, [])

    await cluster.publish(stories(6, seed=56), received_at=RECEIVED_AT + timedelta(hours=1))
    requests = 0
    while not requests:  # traffic until the sweep has asked
        batch = cluster.next_batch()
        assert batch, "the sweep never asked"
        await worker.pipeline.process(batch)
        cluster.commit(batch)
        requests = sum(1 for m in cluster.producer.logs[STATE_INPUT][cluster.committed[STATE_INPUT]:]
                       if m.key.decode() in today)
    doomed = cluster.next_batch()
    cluster.producer.lost.update({TAKEOVER_CHANGELOG, STATE_TOPIC})
    doomed_run = asyncio.create_task(worker.pipeline.process(doomed))
    deadline = asyncio.get_running_loop().time() + 30
    while not any(local_states(worker.states)[key] == state for key, state in today.items()):  # written locally
        assert asyncio.get_running_loop().time() < deadline and not doomed_run.done()
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert not doomed_run.done()  # its sends are never acknowledged: the worker dies waiting
    doomed_run.cancel()
    cluster.producer.lost.clear()
    # only partitions with traffic are swept, so these are the states the doomed batch folded again
    refolded = {key: state for key, state in local_states(worker.states).items() if today.get(key) == state}

    restarted = cluster.worker(worker.states, state_sweep_every_s=0.0)  # in place: the same local copy
    await cluster.run(restarted)
    changelog = MemoryTable(cluster.producer, Ownership(), TAKEOVER_CHANGELOG)
    restore(changelog, set(range(PARTITIONS)))
    assert {key: local_states(changelog)[key] for key in refolded} == refolded
    newest = {}
    for record in cluster.producer.logs[STATE_TOPIC]:
        state = bare(payment_state_serde().decode(record.value))
        newest[state.payment_key] = state
    assert {key: newest[key] for key in refolded} == refolded
