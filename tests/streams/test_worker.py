"""A real worker process on the session broker: events, states, dead letters and ops views.

Runs on both brokers: the embedded one (with its workarounds) and Apache Kafka (with none).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from paystream.dev.scenarios import paypal_capture, paypal_dispute, scenario, stripe_payment_intent
from schemas.dlq import parse_dlq_headers
from schemas.serde import payment_event_serde, payment_state_serde
from tests.fixtures.kafka import drain
from tests.fixtures.streams import OPS_TOKEN, EnvelopeFactory, WorkerProcess

pytestmark = pytest.mark.both_brokers

T0 = 1_790_000_000


async def read_states(consumer_factory: Any, topic: str, expected: int) -> dict[str, Any]:
    records = await drain(await consumer_factory(topic), expected=expected, timeout_s=60)
    latest: dict[str, Any] = {}
    for record in records:
        state = payment_state_serde().decode(record.value)
        if state.payment_key not in latest or state.version >= latest[state.payment_key].version:
            latest[state.payment_key] = state
    return latest


async def wait_for(predicate: Callable[[], Any], timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        await asyncio.sleep(0.3)
    raise AssertionError("condition not met in time")


async def test_shuffled_duplicated_payment_flows_to_events_and_state(
        worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory, publish_raw: Any,
        topics: Any, consumer_factory: Any) -> None:
    worker_factory()
    deliveries = [
        stripe_payment_intent("payment_intent.created", "pi_flow", amount=4200, currency="EUR", created=T0),
        stripe_payment_intent("payment_intent.processing", "pi_flow", amount=4200, currency="EUR", created=T0 + 3),
        stripe_payment_intent("payment_intent.succeeded", "pi_flow", amount=4200, currency="EUR", created=T0 + 7,
                              charge="ch_flow"),
    ]
    envelopes = [envelope_factory(d.body) for d in deliveries]
    sent = envelopes * 3
    random.Random(3).shuffle(sent)
    await publish_raw(*sent)
    events = await drain(await consumer_factory(topics.events), expected=3, idle_s=2, timeout_s=60)
    decoded = [payment_event_serde().decode(r.value) for r in events]
    assert sorted(e.event_key for e in decoded) == sorted(e.key for e in envelopes)
    assert {r.key for r in events} == {b"stripe:pi_flow"}
    states = await read_states(consumer_factory, topics.state, expected=1)
    state = states["stripe:pi_flow"]
    assert (state.status, state.amount_minor, state.captured_minor, state.currency) == ("succeeded", 4200, 4200,
                                                                                         "EUR")
    await asyncio.sleep(1.5)  # duplicates must not trickle out later either
    assert len(await drain(await consumer_factory(topics.events), idle_s=1)) == 3


async def test_poison_record_goes_to_the_dlq_and_the_rest_flows(
        worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory, publish_raw: Any,
        topics: Any, consumer_factory: Any) -> None:
    worker = worker_factory()
    good = [envelope_factory(d.body) for d in scenario("checkout", "stripe")]
    await publish_raw(good[0], (b"stripe:evt_poison", b"\x00not avro at all"), good[1],
                      envelope_factory(b'{"id":"evt_bad_amount","type":"payment_intent.succeeded","created":1,'
                                       b'"data":{"object":{"id":"pi_x","object":"payment_intent","amount":-5,'
                                       b'"currency":"usd","status":"succeeded"}}}'), good[2])
    events = await drain(await consumer_factory(topics.events), expected=3, timeout_s=60)
    assert sorted(payment_event_serde().decode(r.value).event_key for r in events) == sorted(e.key for e in good)
    letters = await drain(await consumer_factory(topics.dlq), expected=2, timeout_s=30)
    infos = sorted((parse_dlq_headers(r.headers) for r in letters), key=lambda i: i.stage)
    assert [(i.stage, i.original_topic) for i in infos] == [("decode", topics.raw), ("normalize", topics.raw)]
    assert any(r.value == b"\x00not avro at all" and r.key == b"stripe:evt_poison" for r in letters)
    assert infos[1].exception_class == "NormalizeError"
    recent = worker.get("/dlq/recent").json()
    assert recent["count"] == 2 and {d["stage"] for d in recent["recent"]} == {"decode", "normalize"}


async def test_conflicting_duplicate_is_dead_lettered_not_dropped(
        worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory, publish_raw: Any,
        topics: Any, consumer_factory: Any) -> None:
    worker_factory()
    first = stripe_payment_intent("payment_intent.created", "pi_c", amount=100, currency="USD", created=T0,
                                  event_id="evt_same")
    second = stripe_payment_intent("payment_intent.created", "pi_c", amount=999, currency="USD", created=T0,
                                   event_id="evt_same")
    await publish_raw(envelope_factory(first.body), envelope_factory(second.body))
    [letter] = await drain(await consumer_factory(topics.dlq), expected=1, timeout_s=60)
    info = parse_dlq_headers(letter.headers)
    assert (info.stage, info.reason) == ("dedup", "conflicting_duplicate")
    assert len(await drain(await consumer_factory(topics.events), idle_s=1)) == 1


async def test_ops_views_need_the_token_and_find_payments(
        worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory, publish_raw: Any,
        topics: Any, consumer_factory: Any) -> None:
    worker = worker_factory()
    deliveries = list(scenario("refund", "paypal"))
    await publish_raw(*(envelope_factory(d.body, provider="paypal") for d in deliveries))
    await read_states(consumer_factory, topics.state, expected=1)
    payment_id = deliveries[0].payment_id
    url = f"{worker.url}/payments/{payment_id}"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert httpx.get(f"{url}?token={OPS_TOKEN}").status_code in (400, 401)

    def refunded() -> Any:
        response = worker.get(f"/payments/{payment_id}")
        return response.status_code == 200 and response.json()["payment"]["status"] == "refunded" and response

    body = (await wait_for(refunded)).json()["payment"]
    assert body["refunded_minor"] == body["captured_minor"] == 2000
    # history is in processing order: raw events of one payment sit on different partitions
    assert sorted(h["event_type"] for h in body["history"]) == sorted(d.event_type for d in deliveries)
    assert worker.get("/payments/does-not-exist").status_code == 404
    stats = worker.get("/dedup/stats").json()
    assert stats["new"] == len(deliveries) and stats["duplicates"] == 0
    metrics = httpx.get(f"{worker.url}/metrics").text
    assert "paystream_worker_dedup_total" in metrics
    # Faust's own metrics, published per scrape (`streams/monitor.py`): every raw record counted, end offsets known
    faust = {(s.name.split("paystream_worker_", 1)[-1], s.labels.get("topic")): s.value
             for family in text_string_to_metric_families(metrics) for s in family.samples}
    assert faust[("messages_received_per_topic_total", topics.raw)] == len(deliveries)
    assert ("topic_partition_end_offset", topics.raw) in faust

    # a dispute names only its capture: held until the capture's own event says which order it is, and the
    # capture's lookup lists it meanwhile
    capture, order, when = "C-HELD-1", "O-HELD-1", datetime.now(UTC) - timedelta(minutes=5)
    dispute = paypal_dispute("CUSTOMER.DISPUTE.CREATED", "PP-D-HELD", capture, amount=2000, currency="USD", when=when)
    await publish_raw(envelope_factory(dispute.body, provider="paypal"))

    def held() -> Any:
        response = worker.get(f"/payments/{capture}")
        return response.status_code == 404 and response.json().get("held") and response

    waiting = (await wait_for(held)).json()
    assert [(h["event_key"], h["event_type"]) for h in waiting["held"]] == [
        (f"paypal:{dispute.event_id}", "CUSTOMER.DISPUTE.CREATED")]
    assert waiting["alias"] == capture and "held" in waiting["message"]
    paid = paypal_capture("PAYMENT.CAPTURE.COMPLETED", capture, order=order, amount=2000, currency="USD", when=when)
    await publish_raw(envelope_factory(paid.body, provider="paypal"))

    def linked() -> Any:
        response = worker.get(f"/payments/{capture}")
        return response.status_code == 200 and response.json()["payment"]["status"] == "disputed" and response

    found = (await wait_for(linked)).json()
    assert (found["alias"], found["payment"]["payment_id"]) == (capture, order)
