"""Replay: the ingress refuses stale signatures; duplicates inside the window are removed downstream.

One real Stripe delivery (exact bytes, exact header) goes to a real uvicorn ingress whose
clock the test moves, on the session broker. Sent again inside the tolerance it is accepted
again (the ingress never deduplicates: a provider retry must always get its 2xx), so the raw
topic holds it twice; a real worker process then emits exactly one payment event for it.
The same bytes after the tolerance, or signed too far ahead, are refused and add nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from ingress.signing import sign_stripe
from paystream.dev.scenarios import stripe_payment_intent
from schemas.serde import envelope_serde, payment_event_serde
from tests.fixtures.ingress import STRIPE_SECRET
from tests.fixtures.kafka import drain
from tests.fixtures.streams import WorkerProcess

T0 = 1_790_000_000


async def test_replay_window_at_the_ingress_and_dedup_downstream(
        topics: Any, ingress_factory: Any, ingress_settings_factory: Any, consumer_factory: Any,
        worker_factory: Callable[..., WorkerProcess]) -> None:
    delivery = stripe_payment_intent("payment_intent.succeeded", "pi_replay", amount=1250, currency="EUR",
                                     created=T0, charge="ch_replay", event_id="evt_replay_1")
    headers = {"content-type": "application/json", "stripe-signature": sign_stripe(delivery.body, STRIPE_SECRET, T0)}
    server = ingress_factory(ingress_settings_factory(topic_prefix=topics.prefix), now=T0 + 1)

    client = httpx.AsyncClient(timeout=10)

    async def send(at: float, sent_headers: dict[str, str] = headers) -> httpx.Response:
        server.clock.now = at
        return await client.post(f"{server.url}/webhooks/stripe", content=delivery.body, headers=sent_headers)

    first, again, edge = await send(T0 + 1), await send(T0 + 120), await send(T0 + 300)
    assert [r.status_code for r in (first, again, edge)] == [200, 200, 200]
    assert len({r.json()["envelope_id"] for r in (first, again, edge)}) == 3  # three stored deliveries
    assert {r.json()["event_key"] for r in (first, again, edge)} == {"stripe:evt_replay_1"}

    stale = await send(T0 + 301)
    assert (stale.status_code, stale.json()["reason"]) == (400, "timestamp_too_old")
    days_later = await send(T0 + 86_400)
    assert (days_later.status_code, days_later.json()["reason"]) == (400, "timestamp_too_old")
    early = await send(T0 - 301)  # a signature made for the future (pre-generated) is refused too
    assert (early.status_code, early.json()["reason"]) == (400, "timestamp_too_new")
    # re-signing the old timestamp with another secret, or moving `t`, does not help
    moved = headers | {"stripe-signature": headers["stripe-signature"].replace(f"t={T0}", f"t={T0 + 400}")}
    assert (await send(T0 + 401, moved)).json()["reason"] == "signature_mismatch"
    # header names arrive in any case (the server lower-cases them): still the same rules
    shouted = {"Content-Type": "application/json", "STRIPE-SIGNATURE": headers["stripe-signature"]}
    assert (await send(T0 + 2, shouted)).status_code == 200

    await client.aclose()
    raw = [envelope_serde().decode(r.value) for r in await drain(await consumer_factory(topics.raw), expected=4)]
    assert len(raw) == 4 and {e.body for e in raw} == {delivery.body}

    worker = worker_factory()
    started = time.monotonic()
    events = await drain(await consumer_factory(topics.events), idle_s=3, timeout_s=60)
    assert [payment_event_serde().decode(r.value).event_key for r in events] == ["stripe:evt_replay_1"]
    stats = worker.get("/dedup/stats").json()
    assert (stats["new"], stats["duplicates"] + stats["replayed"]) == (1, 3), stats
    assert time.monotonic() - started < 60
