"""Signing and posting deliveries to a running ingress, the way providers do (used by `paystream send`).

Each delivery is signed at send time (Stripe `t` and PayPal transmission time are
fresh), 503s and connection errors are retried with backoff like a provider's
retry schedule (compressed), and every outcome is counted.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from ingress.signing import PayPalDevSigner, sign_standard, sign_stripe
from paystream.dev.scenarios import Delivery

__all__ = ["SendReport", "Sender", "Signer"]


@dataclass
class Signer:
    """Secrets for the three schemes (the dev secrets of `paystream dev`, or a test's)."""

    stripe_secret: str
    paypal: PayPalDevSigner | None = None
    paypal_webhook_id: str = ""
    standard_secret: str = ""
    standard_source: str = "demo"

    def request(self, delivery: Delivery) -> tuple[str, dict[str, str]]:
        """(path, headers) for one delivery, signed now."""
        headers = {"content-type": "application/json"}
        if delivery.provider == "stripe":
            headers["stripe-signature"] = sign_stripe(delivery.body, self.stripe_secret, int(time.time()))
            return "/webhooks/stripe", headers
        if delivery.provider == "paypal":
            if self.paypal is None:
                raise ValueError("no PayPal dev signer configured")
            headers.update(self.paypal.headers(delivery.body, self.paypal_webhook_id))
            return "/webhooks/paypal", headers
        now = int(time.time())
        message_id = f"msg_{uuid.uuid5(uuid.NAMESPACE_URL, delivery.event_id).hex}"
        headers.update({"webhook-id": message_id, "webhook-timestamp": str(now),
                        "webhook-signature": sign_standard(delivery.body, self.standard_secret, message_id, now)})
        return f"/webhooks/standard/{self.standard_source}", headers


@dataclass
class SendReport:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    retries: int = 0
    failed: int = 0
    accepted_event_ids: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)

    def summary(self) -> str:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        return (f"sent {self.sent} deliveries, {len(self.accepted_event_ids)} accepted, {self.retries} retries, "
                f"{self.failed} gave up ({statuses})")


class Sender:
    def __init__(self, base_url: str, signer: Signer, *, rate: float | None = None, concurrency: int = 16,
                 max_attempts: int = 8, retry_base_s: float = 0.25, timeout_s: float = 10.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._signer = signer
        self._interval = 1 / rate if rate else 0.0
        self._concurrency = concurrency
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._timeout_s = timeout_s

    async def send(self, deliveries: Sequence[Delivery],
                   on_progress: Callable[[int], None] | None = None) -> SendReport:
        report = SendReport()
        queue: asyncio.Queue[Delivery] = asyncio.Queue()
        for delivery in deliveries:
            queue.put_nowait(delivery)
        pace = asyncio.Lock()
        next_at = [time.monotonic()]

        async def worker(client: httpx.AsyncClient) -> None:
            while True:
                try:
                    delivery = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if self._interval:
                    async with pace:
                        delay = next_at[0] - time.monotonic()
                        next_at[0] = max(next_at[0], time.monotonic()) + self._interval
                    if delay > 0:
                        await asyncio.sleep(delay)
                await self._deliver(client, delivery, report)
                if on_progress is not None:
                    on_progress(1)

        limits = httpx.Limits(max_connections=self._concurrency, max_keepalive_connections=self._concurrency)
        async with httpx.AsyncClient(base_url=self._base_url, timeout=self._timeout_s, limits=limits) as client:
            await asyncio.gather(*(worker(client) for _ in range(self._concurrency)))
        return report

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery, report: SendReport) -> None:
        for attempt in range(self._max_attempts):
            path, headers = self._signer.request(delivery)
            started = time.perf_counter()
            try:
                response = await client.post(path, content=delivery.body, headers=headers)
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            report.sent += 1
            report.statuses[status] += 1
            if status == 200:
                report.accepted_event_ids.append(delivery.event_id)
                report.latencies_s.append(time.perf_counter() - started)
                return
            if status not in (0, 429, 500, 502, 503, 504):
                report.failed += 1
                return  # a 4xx is final, as for a provider
            report.retries += 1
            await asyncio.sleep(self._retry_base_s * (2 ** min(attempt, 5)) * (0.5 + random.random()))  # noqa: S311
        report.failed += 1


def storm(deliveries: list[Delivery], rng: random.Random) -> list[Delivery]:
    """Every delivery 2-4 times, all shuffled: what a bad day of provider retries looks like."""
    stormy = [d for d in deliveries for _ in range(rng.randint(2, 4))]
    rng.shuffle(stormy)
    return stormy
