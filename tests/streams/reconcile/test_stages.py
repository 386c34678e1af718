"""The two stages in-process, on in-memory tables: the scripted day, any interleaving, crashes and replays."""

from __future__ import annotations

from dataclasses import replace

import pytest

from schemas.records import LedgerEntry, ReconciliationWindow
from tests.streams.reconcile.day import Day, event, script
from tests.streams.reconcile.support import (
    EVENTS,
    LEDGER,
    PLACEMENTS,
    Harness,
    Message,
    at,
    first,
    latest,
    partition_for,
)


def normalized(windows: dict[str, ReconciliationWindow]) -> dict[str, ReconciliationWindow]:
    """Corrections compare by content: how many revisions it took depends on batching."""
    return {k: replace(w, revision=min(w.revision, 1)) for k, w in windows.items()}


async def run_day(harness: Harness, day: Day, batch: int = 50) -> None:
    await harness.publish(*day.ledger)
    await harness.run(batch)
    await harness.publish(*day.ordered_stream(), *day.sweep)
    await harness.run(batch)
    await harness.publish(*day.late)
    await harness.run(batch)


async def test_scripted_day_matches_the_books() -> None:
    day = script()
    harness = Harness()
    await harness.publish(*day.ledger)
    await harness.run()
    await harness.publish(*day.ordered_stream(), *day.sweep)
    await harness.run()
    assert first(harness.outputs()) == day.first()
    await harness.publish(*day.late)
    await harness.run()
    outputs = harness.outputs()
    assert first(outputs) == day.first()
    assert normalized(latest(outputs)) == day.final()
    assert {w.key for w in outputs if w.revision > 0} == day.corrected()
    final = day.final().values()
    # the story counts, by hand: see tests/streams/reconcile/day.py
    assert sum(len(w.missing_at_provider) for w in day.first().values()) == 15 + 10 + 10
    assert sum(len(w.missing_at_provider) for w in final) == 15 + 10
    assert sum(len(w.unexpected_at_provider) for w in day.first().values()) == 20 + 4
    assert sum(len(w.unexpected_at_provider) for w in final) == 20 + 3
    assert sum(len(w.amount_mismatches) for w in final) == 15
    assert sum(w.late_events for w in final) == 10 + 5 + 3 * 2 + 4
    assert not harness.letters.sent


@pytest.mark.parametrize(("seed", "batch"), [(1, 7), (2, 200), (3, 1)])
async def test_any_interleaving_and_batching_gives_the_same_windows(seed: int, batch: int) -> None:
    day = script()
    harness = Harness(seed=seed)
    await run_day(harness, day, batch)
    assert first(harness.outputs()) == day.first()
    assert normalized(latest(harness.outputs())) == day.final()


@pytest.mark.parametrize("stage", ["join", "windows"])
async def test_a_crash_before_the_table_write_replays_to_the_same_windows(stage: str) -> None:
    day = script()
    harness = Harness(seed=4)
    await harness.publish(*day.ledger)
    await harness.run()
    await harness.publish(*day.ordered_stream(), *day.sweep)
    for _ in range(5):
        await harness.step(40)
    await harness.join.process(harness._take((EVENTS, LEDGER), 60))  # placements waiting for stage 2
    store = harness.join_store if stage == "join" else harness.window_store
    topics = (EVENTS, LEDGER) if stage == "join" else ("placements",)
    batch = harness._take(topics, 40)
    assert batch
    store.fail_writes = True
    with pytest.raises(RuntimeError):
        if stage == "join":
            await harness.join.process(batch)
        else:
            await harness.windows.process(batch)
    store.fail_writes = False
    harness.rewind(batch)  # never committed: the restarted worker reads it again
    harness.restart()
    await harness.run()
    await harness.publish(*day.late)
    await harness.run()
    assert first(harness.outputs()) == day.first()
    assert normalized(latest(harness.outputs())) == day.final()


async def test_replaying_committed_input_changes_nothing() -> None:
    day = script()
    harness = Harness()
    await run_day(harness, day)
    before = len(harness.outputs())
    for tp in list(harness.positions):
        harness.positions[tp] = 0  # a consumer that lost its committed offsets
    harness.restart()
    await harness.run()
    assert len(harness.outputs()) == before
    assert harness.join.stats.skipped_replays > 0


async def test_a_re_emitted_event_counts_once() -> None:
    """events.v1 may carry the same event again at a new offset (stage 1 re-emits after a crash)."""
    harness = Harness()
    events = [event("stripe", "pi_1", "start", 1000, "EUR", at(10, 5)),
              event("stripe", "pi_1", "confirm", 1000, "EUR", at(10, 6))]
    await harness.publish(*events, *events, *events)
    await harness.publish(*[event("stripe", f"pi_tick{n}", "start", 1, "EUR", at(12)) for n in range(40)])
    await harness.run()
    [window] = [w for w in harness.outputs() if w.window_start == at(10)]
    assert (window.captured_minor, window.provider_confirmed_minor, window.counts_by_status) == (
        1000, 1000, {"succeeded": 1})
    assert window.unexpected_at_provider == ["pi_1"]


async def test_unusable_ledger_records_are_dead_lettered_and_the_rest_flows() -> None:
    harness = Harness()
    good = LedgerEntry(payment_id="pi_ok", provider="stripe", amount_minor=100, currency="EUR", expected_at=at(10))
    encoded = harness.ledger_serde.encode(good)
    right = partition_for(b"stripe:pi_ok", harness.bus.partitions)
    await harness.bus.send(LEDGER, b"stripe:someone-else", encoded, right, None, None)
    await harness.bus.send(LEDGER, b"stripe:pi_ok", encoded, (right + 1) % harness.bus.partitions, None, None)
    await harness.bus.send(LEDGER, b"stripe:pi_x", b"\x00not avro", right, None, None)
    await harness.publish(good)
    await harness.run()
    assert sorted(reason or "decode" for _, stage, reason in harness.letters.sent) == [
        "decode", "invalid_ledger_entry", "wrong_partition"]
    assert {stage for _, stage, _ in harness.letters.sent} == {"reconcile"}
    assert harness.join.stats.rejected == 3


async def test_null_value_records_are_dead_lettered_in_both_stages_and_the_rest_flows() -> None:
    harness = Harness()
    good = LedgerEntry(payment_id="pi_ok", provider="stripe", amount_minor=100, currency="EUR", expected_at=at(10))
    for topic in (EVENTS, LEDGER, PLACEMENTS):  # a null value raises TypeError in the decoders, not DecodeError
        log = harness.bus.logs[(topic, 0)]  # appended directly: the bus refuses null values
        log.append(Message(topic, 0, len(log), b"stripe:pi_null", None))  # type: ignore[arg-type]
    await harness.publish(good)
    await harness.run()
    assert sorted((message.topic, stage) for message, stage, _ in harness.letters.sent) == [
        (EVENTS, "reconcile"), (LEDGER, "reconcile"), (PLACEMENTS, "reconcile")]
    assert harness.join.stats.rejected == 2 and harness.join.stats.ledger == 2
