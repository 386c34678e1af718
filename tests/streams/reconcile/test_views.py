"""Ops views on a real worker, fed end to end: `paystream ledger import` → worker → views (token required)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from schemas.topics import TopicCatalog
from tests.fixtures.streams import OPS_TOKEN, WorkerProcess
from tests.streams.reconcile.conftest import Windows, publish, wait_until
from tests.streams.reconcile.day import event
from tests.streams.reconcile.support import at, partition_for
from tests.streams.reconcile.test_ledger_import import run_import

LEDGER_CSV = """\
payment_id,provider,amount_minor,currency,expected_at,merchant_reference
pi_v1,stripe,1000,EUR,2026-11-02T10:05:00Z,order-1
pi_v2,stripe,2000,EUR,2026-11-02T11:20:00+01:00,order-2
PAYV3,paypal,500,USD,2026-11-02T10:30:00Z,order-3
"""


def sweep(partitions: int) -> list[Any]:
    keys = {partition_for(f"stripe:pi_sweep{n}".encode(), partitions): f"pi_sweep{n}" for n in range(64)}
    assert len(keys) == partitions
    return [event("stripe", pid, "start", 1, "USD", at(12)) for pid in keys.values()]


async def test_reconciliation_views_need_the_token_and_answer_from_the_stream(
        worker_factory: Callable[..., WorkerProcess], stream_env: dict[str, str], tmp_path: Path,
        topics: TopicCatalog, producer_factory: Any, windows: Windows) -> None:
    worker = worker_factory()
    path = tmp_path / "ledger.csv"
    path.write_text(LEDGER_CSV)
    assert run_import(stream_env, path).returncode == 0
    await wait_until(lambda: worker.get("/reconciliation/summary").json()["worker"]["join"]["ledger"] >= 3,
                     what="ledger read")
    producer = await producer_factory()
    await publish(producer, topics, [
        event("stripe", "pi_v1", "start", 1000, "EUR", at(10, 6)), event("stripe", "pi_v1", "confirm", 1000, "EUR",
                                                                        at(10, 7)),
        event("paypal", "PAYV3", "start", 450, "USD", at(10, 31)), event("paypal", "PAYV3", "confirm", 450, "USD",
                                                                        at(10, 32)),
        event("stripe", "pi_v4", "start", 700, "EUR", at(10, 40)), event("stripe", "pi_v4", "confirm", 700, "EUR",
                                                                        at(10, 41)),
        *sweep(topics.partitions),
    ])
    await windows.until(lambda rs: len(rs) >= 2, worker=worker)

    url = f"{worker.url}/reconciliation/windows"
    assert httpx.get(url).status_code == 401
    assert httpx.get(f"{worker.url}/reconciliation/summary").status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong-token"}).status_code == 403
    assert httpx.get(url, params={"token": OPS_TOKEN}).status_code in (400, 401)

    body = await wait_until(lambda: (r := worker.get("/reconciliation/windows").json())["count"] == 2 and r,
                            what="views caught up")
    assert [w["key"] for w in body["windows"]] == ["paypal:USD:2026-11-02T10:00:00+00:00",
                                                   "stripe:EUR:2026-11-02T10:00:00+00:00"]
    [stripe] = worker.get("/reconciliation/windows", params={"provider": "stripe"}).json()["windows"]
    assert (stripe["ledger_expected_minor"], stripe["provider_confirmed_minor"], stripe["net_minor"]) == (
        3000, 1700, 1700)
    assert (stripe["missing_at_provider"], stripe["unexpected_at_provider"]) == (["pi_v2"], ["pi_v4"])
    assert stripe["counts_by_status"] == {"succeeded": 2} and stripe["window_end"] == "2026-11-02T11:00:00+00:00"
    [paypal] = worker.get("/reconciliation/windows", params={"currency": "usd"}).json()["windows"]
    assert paypal["amount_mismatches"] == [{"payment_id": "PAYV3", "ledger_minor": 500, "provider_minor": 450}]
    assert worker.get("/reconciliation/windows", params={"since": "2026-11-02T10:30:00+00:00"}).json()["count"] == 0
    assert worker.get("/reconciliation/windows", params={"since": "2026-11-02T11:00:00+01:00"}).json()["count"] == 2
    for bad in ({"since": "tomorrow"}, {"since": "2026-11-02T10:00:00"}, {"provider": "square"},
                {"currency": "EURO"}):
        assert worker.get("/reconciliation/windows", params=bad).status_code == 400, bad

    summary = worker.get("/reconciliation/summary").json()
    assert [(s["provider"], s["currency"]) for s in summary["latest"]] == [("paypal", "USD"), ("stripe", "EUR")]
    assert summary["anomalies"] == {"missing_at_provider": 1, "unexpected_at_provider": 1, "amount_mismatches": 1,
                                    "late_events": 0}
    assert summary["windows_closed"] == 2 and summary["window_s"] == 3600 and summary["grace_s"] == 600
    assert summary["worker"]["open_windows"] == 1  # the sweep's own window, next to noon
    metrics = httpx.get(f"{worker.url}/metrics").text
    assert 'paystream_worker_reconciliation_windows_total{kind="first"} 2.0' in metrics
