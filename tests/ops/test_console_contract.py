"""The JSON the ops console reads is the JSON the views return (a renamed key would show zeros)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.records import AmountMismatch, ReconciliationWindow
from streams.reconcile.views import series_json

CONSOLE = Path(__file__).resolve().parents[2] / "streams" / "ops" / "console.html"


def reconciliation_script() -> str:
    text = CONSOLE.read_text("utf-8")
    start = text.index("async function refreshReconciliation")
    return text[start:text.index("\n}\n", start)]


def test_every_key_the_reconciliation_panel_reads_is_in_the_summary() -> None:
    script = reconciliation_script()
    assert "data.latest" in script
    start = datetime(2026, 11, 2, 10, tzinfo=UTC)
    window = ReconciliationWindow(
        provider="stripe", currency="EUR", window_start=start, window_end=start + timedelta(hours=1),
        missing_at_provider=["pi_1", "pi_2"], unexpected_at_provider=["pi_3"],
        amount_mismatches=[AmountMismatch(payment_id="pi_4", ledger_minor=100, provider_minor=90)], late_events=5)
    entry = series_json(window)
    read = set(re.findall(r"\bw\.(\w+)", script))
    assert read and read <= entry.keys(), f"console reads keys the summary lacks: {read - entry.keys()}"
    anomalies = set(re.findall(r"\ba\.(\w+)", script))
    assert anomalies == entry["anomalies"].keys()
    assert entry["anomalies"] == {"missing_at_provider": 2, "unexpected_at_provider": 1, "amount_mismatches": 1,
                                  "late_events": 5}
