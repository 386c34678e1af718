"""Reconciliation state stays bounded: final windows and old join states are deleted, and nothing that
arrives for a final window turns into a new result (issue 16, "Expiry")."""

from __future__ import annotations

from datetime import timedelta

from schemas.records import LedgerEntry, PaymentEvent
from streams.reconcile.expiry import Sweeper
from streams.reconcile.windows import encode_batch
from streams.sweep import SLICES_PER_ROUND
from tests.streams.reconcile.day import event
from tests.streams.reconcile.support import PLACEMENTS, Harness, MemoryStore, at, first

HOURS = 30
RETENTION_S = 2 * 3600


def timeline(hours: int = HOURS, per_hour: int = 4) -> list[PaymentEvent | LedgerEntry]:
    """Every hour: payments booked in the ledger, created and confirmed at the provider, in time order."""
    records: list[PaymentEvent | LedgerEntry] = []
    for hour in range(hours):
        for n in range(per_hour):
            pid, when = f"pi_{hour}_{n}", at(hours=hour, minutes=5 + n)
            records.append(LedgerEntry(payment_id=pid, provider="stripe", amount_minor=1000 + n, currency="USD",
                                       expected_at=when, merchant_reference=f"order-{hour}-{n}"))
            records.append(event("stripe", pid, "start", 1000 + n, "USD", when))
            records.append(event("stripe", pid, "confirm", 1000 + n, "USD", when + timedelta(minutes=1)))
    return records


def window_keys(store: MemoryStore) -> list[bytes]:
    return [k for part in store.data.values() for k in part if k.startswith(b"w|")]


def payment_keys(store: MemoryStore) -> list[bytes]:
    return [k for part in store.data.values() for k in part if not k.startswith(b"\x00")]


async def run_timeline(retention_s: int) -> Harness:
    harness = Harness(partitions=1, retention_s=retention_s, sweep_every_s=0)
    await harness.publish(*timeline())
    await harness.run(batch=8)
    return harness


async def test_final_windows_and_old_join_states_are_deleted_and_the_results_do_not_change() -> None:
    kept = await run_timeline(retention_s=180 * 86_400)
    swept = await run_timeline(retention_s=RETENTION_S)
    assert first(swept.outputs()) == first(kept.outputs())  # same results, first and corrections
    assert len(first(kept.outputs())) == HOURS - 2  # the clock (29:08) has not passed 28:00 + 1 h + 10 min
    assert len(window_keys(kept.window_store)) == HOURS
    # final = closed (1 h + 10 min grace) + 2 h retention behind the watermark: about 4 hours of windows remain
    assert 3 <= len(window_keys(swept.window_store)) <= 5, window_keys(swept.window_store)
    entries = [k for part in swept.window_store.data.values() for k in part if k.startswith(b"c|")]
    assert len(entries) <= 5 * 4
    # join states go one more retention later: about 6 hours of payments remain, not 30
    assert len(payment_keys(kept.join_store)) == HOURS * 4
    assert 4 * 4 <= len(payment_keys(swept.join_store)) <= 8 * 4, len(payment_keys(swept.join_store))
    assert swept.windows.expired_windows == HOURS - len(window_keys(swept.window_store))
    assert swept.join.stats.expired == HOURS * 4 - len(payment_keys(swept.join_store))


async def placement_for(harness: Harness, hour: int, payment_id: str) -> None:
    """What the join stage sends when a payment's placement in that hour's window changes (a late refund)."""
    start_ms = int(at(hours=hour).timestamp() * 1000)
    packed = [None, [1000, 1000, "succeeded", 1000, 1000, 500, False, None], 1]
    await harness.bus.send(PLACEMENTS, None, encode_batch([("stripe:USD", start_ms, payment_id, packed)], ()), 0,
                           None, None)


async def test_a_placement_for_a_final_window_is_dropped_even_after_a_restart() -> None:
    harness = await run_timeline(retention_s=RETENTION_S)
    before = len(harness.outputs())
    await placement_for(harness, 0, "pi_0_0")
    await harness.run()
    assert len(harness.outputs()) == before, "a final window came back as a new result"
    assert harness.windows.dropped_final == 1
    harness.restart()  # the final mark is in the table's meta record, not only in memory
    await placement_for(harness, 1, "pi_1_0")
    await harness.run()
    assert len(harness.outputs()) == before
    assert harness.windows.dropped_final == 1  # the new process counts its own


async def test_a_closed_window_inside_the_retention_still_takes_corrections() -> None:
    harness = await run_timeline(retention_s=RETENTION_S)
    late_refund = event("stripe", f"pi_{HOURS - 2}_0", "refund", 1000, "USD", at(hours=HOURS, minutes=30), refund=400)
    await harness.publish(late_refund)
    await harness.run()
    [correction] = [w for w in harness.outputs() if w.is_correction and w.late_events]
    assert correction.window_start == at(hours=HOURS - 2)
    assert harness.windows.dropped_final == 0


def test_the_sweeper_walks_every_key_in_slices_and_starts_over() -> None:
    store = MemoryStore()
    store.data[0] = {f"w|k{i:03d}".encode(): b"" for i in range(25)} | {b"c|other": b""}
    sweeper = Sweeper(prefix=b"w|", every_s=10, slice_size=10)
    seen = [key for now in (0, 10, 20) for key, _ in sweeper.next_slice(store, 0, now)]
    assert seen == sorted(k for k in store.data[0] if k.startswith(b"w|"))
    assert sweeper.next_slice(store, 0, 25) == []  # not due yet
    assert len(sweeper.next_slice(store, 0, 30)) == 10  # round again from the first key
    assert sweeper.next_slice(store, 1, 40) == []  # a partition with no keys


def test_partitions_due_together_take_turns_instead_of_stalling_one_batch() -> None:
    """Every partition falls due at the worker's first batch; one slice per `every_s / SLICES_PER_ROUND`."""
    store = MemoryStore()
    for partition in range(8):
        store.data[partition] = {f"k{i}".encode(): b"" for i in range(5)}
    sweeper = Sweeper(prefix=b"", every_s=32, slice_size=5)
    gap = 32 / SLICES_PER_ROUND
    first_batch = [partition for partition in range(8) if sweeper.next_slice(store, partition, 0.0)]
    assert first_batch == [0]
    swept_at: dict[int, float] = {0: 0.0}
    now = 0.0
    while len(swept_at) < 8:
        now += gap
        for partition in range(8):  # a batch asks for every partition it holds, as the agents do
            if sweeper.next_slice(store, partition, now):
                assert partition not in swept_at
                swept_at[partition] = now
    assert sorted(swept_at) == list(range(8))
    assert now == 7 * gap < sweeper.every_s  # every partition still swept once per round
    assert sweeper.next_slice(store, 0, now + gap) == []  # partition 0 is not due again before every_s
