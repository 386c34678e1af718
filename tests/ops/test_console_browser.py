"""The ops console in a real browser (headless Chromium driven by Playwright) against a running pipeline.

`make test` tries to install Debian's chromium first (scripts/ensure_browser.sh); where that is
impossible the test skips and says why.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingress.signing import sign_stripe
from paystream.dev.scenarios import stripe_dispute, stripe_payment_intent, stripe_refund
from tests.fixtures.ingress import STRIPE_SECRET
from tests.fixtures.streams import OPS_TOKEN

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
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
