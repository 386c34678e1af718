"""The JSON the ops console reads is the JSON the views return (a renamed key would show zeros or blanks).

Each panel of `streams/ops/console.html` reads its payload through one variable in one
function (`w.` for a reconciliation window, `d.` for a dead letter, `l.` for a lag row…);
the keys read there must be what the view's builder returns, less the keys listed here as
deliberately not shown. The builders are the views' own functions; the browser test checks
the same against a running worker's answers (`assert_panels_read`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from schemas.dlq import dlq_headers
from schemas.records import AmountMismatch, PaymentState, ReconciliationWindow
from streams.ops import RateSampler, lag_rows
from streams.ops.dead_letters import DeadLetterFeed
from streams.reconcile.model import Contribution
from streams.reconcile.views import drilldown_json, series_json
from streams.reconcile.windows import drilldown
from streams.views import state_json

CONSOLE = Path(__file__).resolve().parents[2] / "streams" / "ops" / "console.html"

NOT_SHOWN = {
    "overview": {"lag", "processed"},  # per-topic totals and counters for scripts; the page shows per partition
    "window": {"captured_minor", "refunded_minor", "disputed_minor", "net_minor", "failed_count"},
    "drilldown": {"key", "served_by", "anomalies"},  # the page counts the lists it shows
    "payment": {"created_at", "updated_at", "status_at", "last_event_key", "dispute_status", "dispute_count",
                "ignored_events", "traceparent"},
    "history": set(),
}


def function(name: str) -> str:
    """The source of one top-level function of the console's script."""
    text = CONSOLE.read_text("utf-8")
    start = re.search(rf"^(async )?function {name}\(", text, re.M)
    assert start is not None, f"console.html has no function {name}"
    return text[start.start():text.index("\n}\n", start.start())]


def reads(name: str, variable: str) -> set[str]:
    return set(re.findall(rf"\b{variable}\.(\w+)", function(name))) - {"length", "slice", "split", "join"}


def history_keys(payment: dict[str, Any]) -> set[str]:
    return set(payment["history"][0]) if payment["history"] else {"occurred_at", "event_type", "status",
                                                                   "amount_minor", "moved_status"}


def assert_panels_read(*, overview: dict[str, Any] | None = None, summary: dict[str, Any] | None = None,
                       drilldown: dict[str, Any] | None = None, payment: dict[str, Any] | None = None) -> None:
    """Every key a panel reads is in the payload, and every key of the payload is read or listed as not shown."""
    if overview is not None:
        assert reads("refresh", "data") == overview.keys() - NOT_SHOWN["overview"]
        for component in overview["components"].values():
            assert reads("renderComponents", "c") | reads("health", "c") <= component.keys()
        for row in overview["lag_by_partition"]:
            assert reads("renderLag", "l") == row.keys()
        for rate in overview["rates"]:
            assert reads("drawChart", "r") == rate.keys()
        assert reads("renderDedup", "dedup") == overview["dedup"].keys()
        assert reads("renderDeadLetters", "dlq") == overview["dlq"].keys()
        for letter in overview["dlq"]["recent"]:
            assert reads("renderDeadLetters", "d") | reads("replayCell", "d") == letter.keys()
    if summary is not None:
        assert reads("refreshReconciliation", "data") == {"latest"}
        for window in summary["latest"]:
            assert reads("refreshReconciliation", "w") == window.keys() - NOT_SHOWN["window"]
            assert reads("refreshReconciliation", "a") == window["anomalies"].keys()
    if drilldown is not None:
        assert reads("renderDrilldown", "dd") == drilldown.keys() - NOT_SHOWN["drilldown"]
        assert reads("renderDrilldown", "payments") == drilldown["payments"].keys()
        for rows in drilldown["payments"].values():
            for row in rows:
                assert reads("anomalyTable", "x") == row.keys()
    if payment is not None:
        assert reads("renderPayment", "p") == payment.keys() - NOT_SHOWN["payment"]
        assert reads("renderPayment", "h") == history_keys(payment) - NOT_SHOWN["history"]


START = datetime(2026, 11, 2, 10, tzinfo=UTC)


def window() -> ReconciliationWindow:
    return ReconciliationWindow(
        provider="stripe", currency="EUR", window_start=START, window_end=START + timedelta(hours=1),
        missing_at_provider=["pi_1", "pi_2"], unexpected_at_provider=["pi_3"],
        amount_mismatches=[AmountMismatch(payment_id="pi_4", ledger_minor=100, provider_minor=90)], late_events=5)


def test_every_key_the_reconciliation_panel_reads_is_in_the_summary() -> None:
    entry = series_json(window())
    assert_panels_read(summary={"latest": [entry]})
    assert entry["anomalies"] == {"missing_at_provider": 2, "unexpected_at_provider": 1, "amount_mismatches": 1,
                                  "late_events": 5}


def test_the_drilldown_reads_what_the_view_returns() -> None:
    payments = drilldown([
        ("pi_1", Contribution(expected_minor=400, merchant_reference="order-1")),
        ("pi_3", Contribution(confirmed_minor=300, status="succeeded")),
        ("pi_4", Contribution(expected_minor=100, confirmed_minor=90, status="succeeded", merchant_reference="o-4")),
        ("pi_5", Contribution(expected_minor=50, confirmed_minor=50, status="succeeded")),
    ])
    body = drilldown_json(window(), payments) | {"served_by": "http://worker"}
    assert_panels_read(drilldown=body)
    assert [r["payment_id"] for rows in payments.values() for r in rows] == ["pi_1", "pi_3", "pi_4"]
    assert payments["amount_mismatches"][0] | {} == {"payment_id": "pi_4", "ledger_minor": 100, "provider_minor": 90,
                                                     "status": "succeeded", "merchant_reference": "o-4"}


def test_dead_letter_lag_and_rate_rows_are_what_the_panels_read() -> None:
    feed = DeadLetterFeed()
    feed.add(2, 7, b"stripe:pi_1", dlq_headers(original_topic="payments.ledger.v1", original_partition=1,
                                               original_offset=3, stage="reconcile", error=ValueError("x"),
                                               reason="wrong_partition"))
    feed.add(0, 1, b"junk", [("not", b"a dead letter")])
    feed.replayed["2@7"] = "2026-12-04T10:00:00+00:00"
    assert feed.count == 1 and feed.rows()[0]["id"] == "2@7" and feed.rows()[0]["replayed_at"]

    tp = TopicPartition("payments.webhooks.raw.v1", 0)
    consumer = SimpleNamespace(assignment=lambda: {tp, TopicPartition("x-changelog", 0)},
                               highwater=lambda tp: 10, _read_offset={tp: 6}, _committed_offset={})
    worker: Any = SimpleNamespace(app=SimpleNamespace(consumer=consumer, conf=SimpleNamespace(id="paystream")),
                                  pipeline=SimpleNamespace(processed={"raw": 0, "events": 0}))
    rows = lag_rows(worker)
    assert rows == [{"group": "paystream", "topic": tp.topic, "partition": 0, "position": 7, "end": 10, "lag": 3}]

    sampler = RateSampler(worker)
    sampler.samples.extend([(100.0, 0, 0), (102.0, 10, 4)])
    assert sampler.series() == [{"t": 102.0, "raw_per_s": 5.0, "state_per_s": 2.0}]

    components = {"worker": {"url": "http://w", "up": True, "ready": True}}
    dedup = {"new": 1, "duplicates": 0, "replayed": 0, "conflicts": 0, "hit_rate": 0.0}
    assert_panels_read(overview={"components": components, "lag": {}, "lag_by_partition": rows,
                                 "rates": sampler.series(), "dedup": dedup, "processed": {},
                                 "dlq": {"count": feed.count, "recent": feed.rows()}})


def test_the_payment_lookup_reads_what_the_view_returns() -> None:
    state = PaymentState(payment_id="pi_1", provider="stripe", status="succeeded", created_at=START,
                         updated_at=START, status_at=START, last_event_key="stripe:evt_1", version=1,
                         amount_minor=100, currency="EUR")
    assert_panels_read(payment=state_json(state))
