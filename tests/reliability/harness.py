"""A whole pipeline as real processes, and a provider-like load generator, for fault tests."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Self

import httpx

from ingress.signing import sign_stripe
from paystream.dev.scenarios import Delivery
from tests.fixtures.processes import ChildProcess

__all__ = ["Answer", "Load", "Proc", "wait_until"]


class Proc(ChildProcess):
    """A child of the fault suite: restarted often, so starting does not have to wait."""

    def start(self, *, wait: bool = True) -> Self:
        super().start()
        return self.wait_ready(120) if wait else self


async def wait_until(check: object, timeout_s: float, what: str, interval_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):  # type: ignore[arg-type]
            return
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass(frozen=True, slots=True)
class Answer:
    """One attempt as the provider saw it: when it was sent and answered (monotonic), and what came back."""

    event_id: str
    started: float
    finished: float
    status: int
    """0: no HTTP answer (refused connection, timeout)."""
    retry_after: str | None
    error: str | None = None
    """The client's exception when there was no HTTP answer."""


@dataclass
class Load:
    """Posts every delivery 3-5 times through random ingresses, some copies at the same moment,
    retrying 503s, timeouts and refused connections like a provider (with backoff)."""

    urls: list[str]
    secret: str
    rng: random.Random
    concurrency: int = 24
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    acked: set[str] = field(default_factory=set)
    attempts_by_event: Counter[str] = field(default_factory=Counter)
    gave_up: set[str] = field(default_factory=set)
    answers: list[Answer] = field(default_factory=list)

    def plan(self, deliveries: list[Delivery]) -> list[list[Delivery]]:
        """Groups of copies: a group is posted concurrently; groups are shuffled."""
        groups: list[list[Delivery]] = []
        for delivery in deliveries:
            copies = self.rng.randint(3, 5)
            together = self.rng.randint(1, 2)  # 1 or 2 copies at once, through different ingresses
            groups.append([delivery] * together)
            groups.extend([delivery] for _ in range(copies - together))
        self.rng.shuffle(groups)
        return groups

    async def run(self, groups: list[list[Delivery]], rate: float) -> None:
        queue: asyncio.Queue[list[Delivery]] = asyncio.Queue()
        for group in groups:
            queue.put_nowait(group)
        interval = 1 / rate
        next_at = time.monotonic()
        lock = asyncio.Lock()

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal next_at
            while not queue.empty():
                group = queue.get_nowait()
                async with lock:
                    delay = next_at - time.monotonic()
                    next_at = max(next_at, time.monotonic()) + interval * len(group)
                if delay > 0:
                    await asyncio.sleep(delay)
                urls = self.rng.sample(self.urls, len(group)) if len(group) <= len(self.urls) else self.urls
                await asyncio.gather(*(self.deliver(client, d, url) for d, url in zip(group, urls, strict=False)))

        async with httpx.AsyncClient(timeout=10) as client:
            await asyncio.gather(*(worker(client) for _ in range(self.concurrency)))

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery, url: str) -> None:
        for attempt in range(60):
            body = delivery.body
            headers = {"content-type": "application/json",
                       "stripe-signature": sign_stripe(body, self.secret, int(time.time()))}
            started = time.monotonic()
            retry_after = error = None
            try:
                response = await client.post(f"{url}/webhooks/stripe", content=body, headers=headers)
                status, retry_after = response.status_code, response.headers.get("retry-after")
            except httpx.HTTPError as exc:
                status, error = 0, f"{type(exc).__name__}: {exc}"
            self.answers.append(Answer(delivery.event_id, started, time.monotonic(), status, retry_after, error))
            self.requests += 1
            self.statuses[status] += 1
            self.attempts_by_event[delivery.event_id] += 1
            if status == 200:
                self.acked.add(delivery.event_id)
                return
            if status not in (0, 503):
                raise AssertionError(f"unexpected {status} for {delivery.event_id}")
            url = self.rng.choice(self.urls)  # a provider retries; our load balancer may pick another ingress
            await asyncio.sleep(min(2.0, 0.1 * 2 ** min(attempt, 4)) * (0.5 + self.rng.random()))
        self.gave_up.add(delivery.event_id)
