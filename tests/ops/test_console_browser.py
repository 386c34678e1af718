"""The ops console in a real browser (headless Chromium driven by Playwright) against a running pipeline.

`make test` tries to install Debian's chromium first (scripts/ensure_browser.sh); where that is
impossible the test skips and says why.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from ingress.signing import sign_stripe
from paystream.dev.scenarios import stripe_dispute, stripe_payment_intent, stripe_refund
from schemas.records import LedgerEntry, PaymentEvent
from schemas.serde import ledger_serde
from schemas.topics import partition_for
from tests.fixtures.ingress import STRIPE_SECRET
from tests.fixtures.streams import OPS_TOKEN
from tests.ops.test_console_contract import assert_panels_read
from tests.streams.reconcile.conftest import publish, wait_until
from tests.streams.reconcile.day import event
from tests.streams.reconcile.support import at

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PARTITIONS = 4
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium'; `make test` installs it when apt works)")
    return path


async def test_console_shows_health_and_finds_a_posted_payment(
        worker_factory: Any, ingress_factory: Any, ingress_settings_factory: Any, topics: Any) -> None:
    executable = chromium()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed")
    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix))
    worker = worker_factory(PAYSTREAM_OPS_INGRESS_URL=server.url)
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1100})
            await page.goto(f"{worker.url}/ops#token={OPS_TOKEN}")
            assert "#token" not in page.url  # the token leaves the address bar at once
            await page.wait_for_selector("#components td:has-text('worker')")
            await page.wait_for_function(
                "document.querySelector('#components').innerText.includes('ingress')"
                " && document.querySelector('#components').innerText.includes('ready')")
            delivery = stripe_payment_intent("payment_intent.succeeded", "pi_console_demo", amount=1999,
                                             currency="EUR", created=int(time.time()), charge="ch_console")
            async with httpx.AsyncClient() as client:
                response = await client.post(f"{server.url}/webhooks/stripe", content=delivery.body, headers={
                    "content-type": "application/json",
                    "stripe-signature": sign_stripe(delivery.body, STRIPE_SECRET, int(time.time()))})
            assert response.status_code == 200
            status = ""
            for _ in range(60):
                await page.fill("#lookup-input", "pi_console_demo")
                await page.click("#lookup-button")
                await page.wait_for_selector("#payment-status")
                status = await page.inner_text("#payment-status")
                if status == "succeeded":
                    break
                await page.wait_for_timeout(500)
            assert status == "succeeded"
            assert "1999" in await page.inner_text("#payment")
            assert "payment_intent.succeeded" in await page.inner_text("#history")

            # a refund, and a dispute naming only the charge: looked up by the charge, shown on the payment
            now = int(time.time())
            refund = stripe_refund("refund.created", "re_console", "pi_console_demo", "ch_console", amount=500,
                                   currency="EUR", created=now + 1)
            dispute_body = json.loads(stripe_dispute("charge.dispute.created", "dp_console", "pi_console_demo",
                                                     "ch_console", amount=1999, currency="EUR", created=now + 2,
                                                     status="needs_response").body)
            dispute_body["data"]["object"]["payment_intent"] = None
            async with httpx.AsyncClient() as client:
                for body in (refund.body, json.dumps(dispute_body).encode()):
                    response = await client.post(f"{server.url}/webhooks/stripe", content=body, headers={
                        "content-type": "application/json",
                        "stripe-signature": sign_stripe(body, STRIPE_SECRET, int(time.time()))})
                    assert response.status_code == 200
            for _ in range(60):
                await page.fill("#lookup-input", "ch_console")
                await page.click("#lookup-button")
                await page.wait_for_selector("#payment-status")
                status = await page.inner_text("#payment-status")
                if status == "disputed" and await page.query_selector("#refunds"):
                    break
                await page.wait_for_timeout(500)
            assert status == "disputed"
            assert "pi_console_demo" in await page.inner_text("#payment")
            refunds, disputes = await page.inner_text("#refunds"), await page.inner_text("#disputes")
            assert "re_console" in refunds and "500" in refunds and "succeeded" in refunds
            assert "dp_console" in disputes and "1999" in disputes and "open" in disputes
            await page.screenshot(path=str(ARTIFACTS / "ops-console.png"), full_page=True)
        finally:
            await browser.close()


async def test_console_without_token_asks_for_one(worker_factory: Any) -> None:
    executable = chromium()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed")
    worker = worker_factory()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{worker.url}/ops")
            await page.wait_for_selector("#token-box", state="visible")
            assert "token" in await page.inner_text("#updated")
        finally:
            await browser.close()


PANELS = ARTIFACTS / "ops-console-panels"
WINDOW_KEY = "stripe:EUR:2026-11-02T10:00:00+00:00"


def seeded_day() -> tuple[list[LedgerEntry | PaymentEvent], list[PaymentEvent], LedgerEntry]:
    """One stripe EUR window (10:00-11:00) with a payment the provider never confirmed, one paid short and
    one the ledger never expected; the next morning on every partition closes it; a refund after grace is
    late. Returns (on time, late, a ledger entry for the unexpected payment to send to the wrong partition).
    """
    def ledger(pid: str, amount: int, reference: str) -> LedgerEntry:
        return LedgerEntry(payment_id=pid, provider="stripe", amount_minor=amount, currency="EUR",
                           expected_at=at(10, 5), merchant_reference=reference)

    on_time: list[LedgerEntry | PaymentEvent] = [
        ledger("pi_console_ok", 1000, "order-ok"), ledger("pi_console_missing", 2500, "order-missing"),
        ledger("pi_console_short", 3000, "order-short")]
    for pid, amount in (("pi_console_ok", 1000), ("pi_console_short", 2900), ("pi_console_extra", 700)):
        on_time += [event("stripe", pid, "start", amount, "EUR", at(10, 10)),
                    event("stripe", pid, "confirm", amount, "EUR", at(10, 11))]
    covered: set[int] = set()
    n = 0
    while len(covered) < PARTITIONS:
        pid = f"pi_console_sweep{n}"
        partition = partition_for(f"stripe:{pid}".encode(), PARTITIONS)
        if partition not in covered:
            covered.add(partition)
            on_time.append(event("stripe", pid, "start", 100, "USD", at(11, 30)))
        n += 1
    late = [event("stripe", "pi_console_ok", "refund", 1000, "EUR", at(11, 40), refund=400)]
    return on_time, late, ledger("pi_console_extra", 700, "order-extra")


async def test_console_shows_reconciliation_dead_letters_lag_and_rates(
        worker_factory: Any, topics: Any, producer_factory: Any, envelope_factory: Any, publish_raw: Any) -> None:
    """The operator's day: an anomalous window highlighted and drilled into, a dead letter replayed from the
    console and seen applied (the window's unexpected payment now matches its ledger entry), the worker's
    lag per partition and its events per second. Each panel is saved as a screenshot under test-artifacts/.
    """
    executable = chromium()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed")
    assert topics.partitions == PARTITIONS
    worker = worker_factory()
    producer = await producer_factory()
    on_time, late, misplaced = seeded_day()
    await publish(producer, topics, on_time)
    await wait_until(lambda: WINDOW_KEY in {w["key"] for w in worker.get("/reconciliation/summary").json()["latest"]},
                     what="the seeded window closed")
    await publish(producer, topics, late)
    await wait_until(lambda: worker.get(f"/reconciliation/drilldown?key={quote(WINDOW_KEY)}").json()["revision"] == 1,
                     what="the late refund's correction")
    # a ledger import that put a record on the wrong partition: dead-lettered, not joined
    wrong = (partition_for(misplaced.payment_key.encode(), PARTITIONS) + 1) % PARTITIONS
    await (await producer.send(topics.ledger, ledger_serde().encode(misplaced), key=misplaced.payment_key.encode(),
                               partition=wrong))
    PANELS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            await page.goto(f"{worker.url}/ops#token={OPS_TOKEN}")

            # Reconciliation: the window is highlighted with its counts, and its drill-down names the payments
            row = page.locator(f'#recon tr[data-key="{WINDOW_KEY}"]')
            await row.wait_for()
            assert "anomaly" in (await row.get_attribute("class") or "")
            cells = [c.strip() for c in await row.locator("td").all_inner_texts()]
            assert cells[:2] == ["stripe", "EUR"] and cells[3].startswith("1")  # revision 1, corrected
            assert cells[4:10] == ["6500", "4600", "1", "1", "1", "1"]  # expected, confirmed, missing..late
            assert await page.locator("#recon tr.anomaly").count() == 1  # the USD sweep window stays open
            await row.locator("button").click()
            await page.wait_for_selector("#dd-missing")
            missing, unexpected = await page.inner_text("#dd-missing"), await page.inner_text("#dd-unexpected")
            mismatches = await page.inner_text("#dd-mismatches")
            assert "pi_console_missing" in missing and "order-missing" in missing and "2500" in missing
            assert "pi_console_extra" in unexpected and "700" in unexpected
            assert "pi_console_short" in mismatches and "order-short" in mismatches
            assert "3000" in mismatches and "2900" in mismatches and "-100" in mismatches
            assert "pi_console_ok" not in await page.inner_text("#drilldown")
            await page.locator("#recon-panel").screenshot(path=str(PANELS / "reconciliation.png"))

            # Dead letters: the misplaced ledger record is listed; replayed after a confirmation; applied
            letter = page.locator("#dlq tr", has_text="stripe:pi_console_extra")
            await letter.wait_for()
            assert "wrong_partition" in await letter.inner_text() and "reconcile" in await letter.inner_text()
            assert int(await page.inner_text("#dlq-count")) == 1
            await letter.locator("button[data-replay]").click()
            confirm = letter.locator("button[data-confirm]")
            await confirm.wait_for()
            await page.locator("#dlq-panel").screenshot(path=str(PANELS / "dead-letters-confirm.png"))
            await confirm.click()
            await letter.locator("text=replayed").wait_for()
            # applied: the ledger entry now joins the unexpected payment (a late change: revision 2)
            await page.wait_for_function(
                "document.querySelector('#recon tr.anomaly') !== null && [...document.querySelectorAll("
                "'#recon tr.anomaly td')].map(td => td.innerText.trim()).slice(4, 10).join(',') "
                "=== '7200,4600,1,0,1,2'", timeout=60_000)
            await page.wait_for_function("document.querySelector('#dd-unexpected') === null"
                                         " && document.querySelector('#drilldown').innerText.includes('revision 2')",
                                         timeout=30_000)
            assert "order-missing" in await page.inner_text("#dd-missing")
            await page.locator("#dlq-panel").screenshot(path=str(PANELS / "dead-letters.png"))
            await page.locator("#recon-panel").screenshot(path=str(PANELS / "reconciliation-after-replay.png"))

            # Lag per group and partition, and the events/s chart: webhooks through the raw path meanwhile
            for n in range(30):
                delivery = stripe_payment_intent("payment_intent.succeeded", f"pi_console_rate{n}", amount=100 + n,
                                                 currency="EUR", created=int(time.time()), charge=f"ch_rate{n}")
                await publish_raw(envelope_factory(delivery.body))
                await asyncio.sleep(0.1)
            await wait_until(lambda: any(r["raw_per_s"] > 0 for r in worker.get("/ops/api/overview").json()["rates"]),
                             what="a sample with webhooks in it")
            raw_cells = ("[...document.querySelectorAll('#lag tbody tr')]"
                         f".filter(tr => tr.innerText.includes('{topics.raw}'))")
            await page.wait_for_function(  # every webhook read: the raw partitions' ends add up to 30, no lag left
                f"{raw_cells}.reduce((sum, tr) => sum + Number(tr.cells[4].innerText), 0) >= 30"
                f" && {raw_cells}.every(tr => tr.cells[5].innerText.trim() === '0')", timeout=30_000)
            lag_rows = await page.locator("#lag tbody tr").all_inner_texts()
            raw_rows = [r for r in lag_rows if topics.raw in r]
            assert len(raw_rows) == PARTITIONS, lag_rows
            assert all(r.split("\t")[0] == worker.get("/ops/api/overview").json()["lag_by_partition"][0]["group"]
                       for r in raw_rows)
            ends = [int(r.split("\t")[4]) for r in raw_rows]
            assert sum(ends) >= 30 and all(r.split("\t")[5].strip() == "0" for r in raw_rows)
            await page.wait_for_function("Number(document.querySelector('#chart').dataset.points) >= 2",
                                         timeout=30_000)
            assert await page.locator("#chart polyline").count() == 2
            assert "webhooks" in await page.inner_text("#rate-now")
            await page.locator("#lag-panel").screenshot(path=str(PANELS / "lag.png"))
            await page.locator("#rates-panel").screenshot(path=str(PANELS / "events-per-second.png"))
            await page.screenshot(path=str(PANELS / "whole-console.png"), full_page=True)
        finally:
            await browser.close()

    assert worker.get("/reconciliation/drilldown?key=stripe:EUR:nope").status_code == 404
    replay_url = f"{worker.url}/ops/api/dlq/replay"
    assert httpx.post(replay_url, json={"id": "0@0"}).status_code == 401
    assert httpx.post(replay_url, json={"id": "0@0"}, headers={"Authorization": "Bearer x"}).status_code == 403
    ops = {"Authorization": f"Bearer {OPS_TOKEN}"}
    assert httpx.post(replay_url, json={"id": "zero"}, headers=ops).status_code == 400
    assert httpx.post(replay_url, json={"id": "0@999"}, headers=ops).status_code == 404

    # the live views answer with exactly the keys each panel reads
    overview = worker.get("/ops/api/overview").json()
    summary = worker.get("/reconciliation/summary").json()
    detail = worker.get(f"/reconciliation/drilldown?key={quote(WINDOW_KEY)}").json()
    assert_panels_read(overview=overview, summary=summary, drilldown=detail)
