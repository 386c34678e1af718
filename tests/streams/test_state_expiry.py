"""Payment states and alias entries expire by the retention horizon, as tombstones, only where the worker owns.

In-process (tests/streams/memory.py stands in for the broker and the local RocksDB), with the
pipeline's real state stage: payments last heard of more than `PAYSTREAM_STATE_RETENTION_S` before
the partition's newest event are deleted locally and in the changelog (a worker that restores the
partition does not bring them back), payments with a recent event stay and equal the pure fold,
and partitions the worker does not own are never touched.
"""

from __future__ import annotations

from datetime import timedelta

import orjson

from schemas.serde import payment_state_serde
from streams.identity import ALIAS_PREFIX, AliasEntry
from streams.normalize import normalize
from streams.state import fold_all
from streams.state_expiry import expired_keys
from tests.streams.memory import PARTITIONS, MemoryTable, Ownership, Producer, restore
from tests.streams.test_recovery import follow_ups
from tests.streams.test_state_takeover import (
    CHANGELOG,
    RAW,
    RECEIVED_AT,
    Cluster,
    bare,
    envelope_of,
    local_states,
    stories,
)

RETENTION = timedelta(days=3)
OPTIONS = {"state_retention_s": int(RETENTION.total_seconds()), "state_sweep_every_s": 0.0}


def aliases(table: MemoryTable) -> dict[bytes, AliasEntry]:
    return {key: AliasEntry.unpack(value) for partition in table.partitions()
            for key, value in table.data[partition].items() if key.startswith(ALIAS_PREFIX)}


async def test_payments_quiet_past_the_horizon_leave_the_table_and_its_changelog_and_the_rest_stay_exact() -> None:
    cluster = Cluster(Producer())
    worker = cluster.worker(**OPTIONS)
    old = stories(24, seed=31)
    await cluster.publish(old, received_at=RECEIVED_AT)
    await cluster.run(worker)
    before = local_states(worker.states)
    assert any(entry.payment for entry in aliases(worker.states).values()), "no alias entry: proves nothing"

    refreshed = follow_ups(old, seed=32)[::2]  # some old payments hear of a refund two days later
    await cluster.publish(refreshed, received_at=RECEIVED_AT + timedelta(days=2))
    new = stories(24, seed=33)  # four days after the first events: past the horizon for the others
    await cluster.publish(new, received_at=RECEIVED_AT + timedelta(days=4))
    await cluster.run(worker)

    refreshed_keys = {f"{d.provider}:{d.payment_id}" for d in refreshed}
    new_keys = {f"{d.provider}:{d.payment_id}" for d in new}
    kept = set(local_states(worker.states))
    gone = set(before) - refreshed_keys
    assert gone and refreshed_keys and kept == refreshed_keys | new_keys
    reference = {key: bare(state) for key, state in fold_all(
        [normalize(envelope_of(d, RECEIVED_AT)) for d in old]
        + [normalize(envelope_of(d, RECEIVED_AT + timedelta(days=2))) for d in refreshed]
        + [normalize(envelope_of(d, RECEIVED_AT + timedelta(days=4))) for d in new]).items() if key in kept}
    assert local_states(worker.states) == reference
    assert not {entry.payment for entry in aliases(worker.states).values()} & {k.split(":", 1)[1] for k in gone}

    tombstones = {record.key for record in cluster.producer.logs[CHANGELOG] if record.value is None}
    assert {key.encode() for key in gone} <= tombstones
    restored = MemoryTable(cluster.producer, Ownership(), CHANGELOG)
    restore(restored, set(range(PARTITIONS)))
    assert restored.data == worker.states.data, "a restore from the changelog brings nothing back"
    expired = worker.pipeline.metrics.state_expired
    assert expired.labels("payment")._value.get() == len(gone)
    assert expired.labels("alias")._value.get() >= 1


async def test_the_sweep_leaves_partitions_the_worker_does_not_own() -> None:
    cluster = Cluster(Producer())
    ownership = Ownership()
    worker = cluster.worker(ownership=ownership, **OPTIONS)
    await cluster.publish(stories(24, seed=41), received_at=RECEIVED_AT)
    await cluster.run(worker)
    others = {p: dict(worker.states.data[p]) for p in (2, 3)}
    assert all(others.values())

    ownership.actives = frozenset({0, 1})  # partitions 2 and 3 went to another worker (a standby copy stays)
    await cluster.publish(stories(24, seed=42), received_at=RECEIVED_AT + timedelta(days=4))
    while cluster.committed[RAW] < len(cluster.producer.logs[RAW]):  # events for 2 and 3 go round state-input
        batch = cluster.next_batch()
        await worker.pipeline.process(batch)
        cluster.commit(batch)

    assert {p: worker.states.data[p] for p in (2, 3)} == others
    owned_states = [k for p in (0, 1) for k in worker.states.data[p] if not k.startswith(b"\x00")]
    assert owned_states and worker.pipeline.metrics.state_expired.labels("payment")._value.get() > 0


def test_an_alias_entry_written_before_entries_carried_a_stamp_is_stamped_first_and_expires_a_horizon_later() -> None:
    legacy = orjson.dumps({"payment": "pi_1", "held": {}})
    key = ALIAS_PREFIX + b"stripe:ch_1"
    retention_ms = int(RETENTION.total_seconds() * 1000)
    writes, counts, _ = expired_keys([(key, legacy)], 10_000, retention_ms, payment_state_serde())
    stamped = writes[key]
    assert stamped is not None and AliasEntry.unpack(stamped).touched_ms == 10_000 and counts["alias"] == 0
    assert expired_keys([(key, stamped)], 10_000 + retention_ms - 1, retention_ms, payment_state_serde()).writes == {}
    writes, counts, _ = expired_keys([(key, stamped)], 10_000 + retention_ms, retention_ms, payment_state_serde())
    assert writes == {key: None} and counts["alias"] == 1


def test_an_unreadable_state_is_left_for_the_stage_to_dead_letter() -> None:
    writes, counts, kept = expired_keys([(b"stripe:pi_x", b"\x00garbage")], 10**15, 1, payment_state_serde())
    assert writes == {} and counts == {"payment": 0, "alias": 0} and kept == {}
