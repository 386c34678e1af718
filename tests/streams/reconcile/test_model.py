"""Pure logic: windows, placements, lateness, sums and the watermark, with small hand-computed cases."""

from __future__ import annotations

import orjson
import pytest

from schemas.clock import to_epoch_ms
from schemas.records import AmountMismatch, LedgerEntry
from streams.reconcile.model import (
    Contribution,
    JoinState,
    Placement,
    WindowSpec,
    fold_event,
    fold_ledger,
    ledger_problem,
    settle,
    targets,
)
from streams.reconcile.windows import (
    Batch,
    PlacementRecord,
    SourceClock,
    Tick,
    decode_batch,
    digest,
    encode_batch,
    summarize,
    watermark,
)
from tests.streams.reconcile.day import event
from tests.streams.reconcile.support import Harness, at, partition_for

SPEC = WindowSpec.from_seconds(3600, 600)
H10 = to_epoch_ms(at(10))


def ms(hours: float, minutes: float = 0) -> int:
    return to_epoch_ms(at(hours, minutes))


def ledger(pid: str = "pi_1", amount: int = 1000, currency: str = "EUR", hour: float = 10, minute: float = 30,
           provider: str = "stripe") -> LedgerEntry:
    return LedgerEntry(payment_id=pid, provider=provider, amount_minor=amount, currency=currency,
                       expected_at=at(hour, minute))


def test_windows_are_epoch_aligned_and_close_after_grace() -> None:
    assert SPEC.start(ms(10, 59)) == H10 and SPEC.start(ms(11)) == ms(11)
    assert SPEC.closes_at(H10) == ms(11, 10)
    assert SPEC.on_time(H10, ms(11, 9)) and not SPEC.on_time(H10, ms(11, 10)) and SPEC.on_time(H10, None)


def test_the_ledger_window_holds_both_sides_whenever_the_provider_confirms() -> None:
    state = JoinState()
    fold_ledger(state, ledger(minute=55))
    fold_event(state, event("stripe", "pi_1", "start", 1000, "EUR", at(11, 2)))
    fold_event(state, event("stripe", "pi_1", "confirm", 1000, "EUR", at(11, 3)))
    assert targets(state, SPEC) == {("EUR", H10): Contribution(
        expected_minor=1000, confirmed_minor=1000, status="succeeded", amount_minor=1000, captured_minor=1000)}


def test_without_ledger_the_confirmation_time_places_the_payment() -> None:
    state = JoinState()
    fold_event(state, event("stripe", "pi_1", "start", 1000, "EUR", at(10, 59)))
    assert list(targets(state, SPEC)) == [("EUR", H10)]  # unconfirmed: its first event
    fold_event(state, event("stripe", "pi_1", "confirm", 1000, "EUR", at(11, 1)))
    assert list(targets(state, SPEC)) == [("EUR", ms(11))]


def test_a_different_currency_is_missing_in_one_window_and_unexpected_in_another() -> None:
    state = JoinState()
    fold_ledger(state, ledger(currency="EUR"))
    fold_event(state, event("stripe", "pi_1", "confirm", 1000, "USD", at(10, 40)))
    wanted = targets(state, SPEC)
    assert wanted[("EUR", H10)] == Contribution(expected_minor=1000)
    assert wanted[("USD", H10)].confirmed_minor == 1000 and wanted[("USD", H10)].expected_minor is None


def test_refunds_keep_the_confirmed_amount_and_disputes_count_until_won() -> None:
    state = JoinState()
    fold_event(state, event("stripe", "pi_1", "confirm", 1000, "EUR", at(10)))
    fold_event(state, event("stripe", "pi_1", "refund", 1000, "EUR", at(10, 5), refund=300))
    [c] = targets(state, SPEC).values()
    assert (c.status, c.confirmed_minor, c.captured_minor, c.refunded_minor) == ("partially_refunded", 1000, 1000, 300)


def test_settle_on_time_and_late() -> None:
    state = JoinState()
    a, b = Contribution(expected_minor=5), Contribution(expected_minor=5, confirmed_minor=5)
    assert settle(state, {("EUR", H10): a}, ms(10, 30), SPEC) == [("EUR", H10)]
    assert state.placements[("EUR", H10)] == Placement(a, a, 0)
    assert settle(state, {("EUR", H10): a}, ms(12), SPEC) == []  # no change, not late
    settle(state, {("EUR", H10): b}, ms(11, 10), SPEC)
    assert state.placements[("EUR", H10)] == Placement(a, b, 1)
    settle(state, {("EUR", ms(11)): b}, ms(11, 20), SPEC)  # moved late: the old window keeps its first view
    assert state.placements == {("EUR", H10): Placement(a, None, 2), ("EUR", ms(11)): Placement(b, b, 0)}


def test_an_on_time_move_leaves_nothing_behind() -> None:
    state = JoinState()
    c = Contribution(confirmed_minor=1)
    settle(state, {("EUR", H10): c}, ms(10), SPEC)
    assert settle(state, {("EUR", ms(11)): c}, ms(11), SPEC) == [("EUR", H10), ("EUR", ms(11))]
    assert list(state.placements) == [("EUR", ms(11))]


def test_join_state_round_trips() -> None:
    state = JoinState()
    fold_ledger(state, ledger())
    fold_event(state, event("stripe", "pi_1", "confirm", 900, "EUR", at(10, 40)))
    settle(state, targets(state, SPEC), ms(10, 40), SPEC)
    again = JoinState.unpack(orjson.loads(orjson.dumps(state.pack())))
    assert again == state
    assert targets(again, SPEC) == targets(state, SPEC)


def test_re_applying_an_event_changes_no_contribution() -> None:
    state = JoinState()
    events = [event("paypal", "P1", "start", 700, "USD", at(9)), event("paypal", "P1", "confirm", 700, "USD", at(9, 1)),
              event("paypal", "P1", "refund", 700, "USD", at(9, 5), refund=100)]
    for e in events:
        fold_event(state, e)
    before = targets(state, SPEC)
    for e in events:
        fold_event(state, e)
    assert targets(state, SPEC) == before


def test_summarize_a_hand_computed_window() -> None:
    window = summarize("stripe", "EUR", H10, SPEC, [
        ("pi_c", Contribution(expected_minor=1000, confirmed_minor=1000, status="succeeded", amount_minor=1000,
                              captured_minor=1000, refunded_minor=250)),
        ("pi_a", Contribution(expected_minor=400)),
        ("pi_b", Contribution(confirmed_minor=300, status="disputed", amount_minor=300, captured_minor=300,
                              disputed_minor=300)),
        ("pi_d", Contribution(expected_minor=800, confirmed_minor=750, status="succeeded", amount_minor=750,
                              captured_minor=750)),
        ("pi_e", Contribution(expected_minor=90, status="failed", amount_minor=90)),
    ])
    assert (window.captured_minor, window.refunded_minor, window.disputed_minor, window.net_minor) == (
        2050, 250, 300, 1500)
    assert (window.ledger_expected_minor, window.provider_confirmed_minor, window.failed_count) == (2290, 2050, 1)
    assert window.counts_by_status == {"succeeded": 2, "disputed": 1, "failed": 1}
    assert window.sums_by_status == {"succeeded": 1750, "disputed": 300, "failed": 90}
    assert (window.missing_at_provider, window.unexpected_at_provider) == (["pi_a", "pi_e"], ["pi_b"])
    assert window.amount_mismatches == [AmountMismatch(payment_id="pi_d", ledger_minor=800, provider_minor=750)]
    assert window.key == "stripe:EUR:2026-11-02T10:00:00+00:00"
    assert digest(window) == digest(window.__class__(**{**window.to_avro(), "amount_mismatches":
                                                        window.amount_mismatches, "revision": 3}))


def test_watermark_is_the_slowest_partition_that_is_not_idle() -> None:
    assert watermark({0: SourceClock(5, False)}, 2) is None  # partition 1 never reported
    assert watermark({0: SourceClock(5, False), 1: SourceClock(9, False)}, 2) == 5
    assert watermark({0: SourceClock(5, True), 1: SourceClock(9, False)}, 2) == 9
    assert watermark({0: SourceClock(5, True), 1: SourceClock(9, True)}, 2) == 9


def test_internal_records_round_trip_and_garbage_is_refused() -> None:
    packed = Placement(None, Contribution(expected_minor=1), 2).pack()
    data = encode_batch([("stripe:EUR", H10, "pi:1", packed), ("stripe:EUR", H10, "pi_2", None)],
                        [Tick(3, 77, True)])
    assert decode_batch(data) == Batch([PlacementRecord("stripe:EUR", H10, "pi:1", packed),
                                        PlacementRecord("stripe:EUR", H10, "pi_2", None)], [Tick(3, 77, True)])
    assert Placement.unpack(decode_batch(data).placements[0].packed or []) == Placement.unpack(packed)
    for garbage in (b"", b"[]", b'["x", [], []]', b'{"a":1}', b'["b", [["s", "1", "p", null]], []]',
                    b'["b", [["s", 1, "p", [1]]], []]', b'["b", [], [[1, 2]]]'):
        with pytest.raises(ValueError, match="reconciliation record"):
            decode_batch(garbage)


def test_ledger_records_the_stream_refuses() -> None:
    entry = ledger()
    assert ledger_problem(entry, b"stripe:pi_1") is None
    assert ledger_problem(entry, b"stripe:other") is not None
    assert ledger_problem(ledger(currency="eur"), None) is not None
    assert ledger_problem(ledger(amount=-1), None) is not None


async def test_an_idle_partition_stops_holding_windows_open() -> None:
    """Partition with no events at all: windows close once its owner announces it idle."""
    harness = Harness(partitions=2)
    busy = [k for k in (f"pi_{n}" for n in range(40)) if partition_for(f"stripe:{k}".encode(), 2) == 0][:2]
    await harness.publish(event("stripe", busy[0], "confirm", 100, "EUR", at(10)),
                          event("stripe", busy[1], "start", 1, "EUR", at(12)))
    await harness.run()
    assert harness.outputs() == []
    assert await harness.join.announce_idle({0, 1}, idle_after_s=60, now=harness.join._started + 30) == []
    harness.join.last_seen[0] = harness.join._started + 60  # partition 0 keeps reading
    assert await harness.join.announce_idle({0, 1}, idle_after_s=60, now=harness.join._started + 61) == [1]
    assert await harness.join.announce_idle({0, 1}, idle_after_s=60, now=harness.join._started + 62) == []
    await harness.run()
    [window] = harness.outputs()
    assert (window.window_start, window.unexpected_at_provider) == (at(10), [busy[0]])


def test_the_merchant_reference_rides_to_the_window_without_moving_it() -> None:
    """The drill-down shows the ledger's reference; a ledger correction of the reference alone is no window
    change (no placement sent, no late event), and placements stored before the field existed still read."""
    state = JoinState()
    fold_ledger(state, LedgerEntry(payment_id="pi_1", provider="stripe", amount_minor=1000, currency="EUR",
                                   expected_at=at(10, 30), merchant_reference="order-7"))
    fold_event(state, event("stripe", "pi_1", "confirm", 900, "EUR", at(10, 40)))
    assert settle(state, targets(state, SPEC), ms(10, 40), SPEC) == [("EUR", H10)]
    placed = state.placements[("EUR", H10)].current
    assert placed is not None and placed.merchant_reference == "order-7"
    assert JoinState.unpack(orjson.loads(orjson.dumps(state.pack()))).placements == state.placements
    assert Contribution.unpack(placed.pack()).merchant_reference == "order-7"
    fold_ledger(state, LedgerEntry(payment_id="pi_1", provider="stripe", amount_minor=1000, currency="EUR",
                                   expected_at=at(10, 30), merchant_reference="order-7b"))
    assert settle(state, targets(state, SPEC), ms(12), SPEC) == []
    assert state.placements[("EUR", H10)].late == 0
    old = Contribution.unpack([1000, None, None, 0, 0, 0, 0])  # seven fields: stored before the reference
    assert old == Contribution(expected_minor=1000) and old.merchant_reference is None
    assert JoinState.unpack([[1000, "EUR", ms(10)], None, []]).ledger == JoinState.unpack(
        [[1000, "EUR", ms(10), None], None, []]).ledger
