"""PAYSTREAM_RECONCILIATION=false: the worker keeps its main path and neither reads events again nor pretends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paystream.dev.scenarios import stripe_payment_intent
from tests.fixtures.streams import EnvelopeFactory, WorkerProcess
from tests.streams.test_worker import read_states

T0 = 1_790_000_000


async def test_reconciliation_off_keeps_the_main_path_and_says_so_in_its_views(
        worker_factory: Callable[..., WorkerProcess], envelope_factory: EnvelopeFactory, publish_raw: Any,
        topics: Any, consumer_factory: Any) -> None:
    worker = worker_factory(PAYSTREAM_RECONCILIATION="false")
    delivery = stripe_payment_intent("payment_intent.succeeded", "pi_norecon", amount=900, currency="EUR",
                                     created=T0, charge="ch_norecon")
    await publish_raw(envelope_factory(delivery.body))
    states = await read_states(consumer_factory, topics.state, expected=1)
    assert states["stripe:pi_norecon"].status == "succeeded"

    for path in ("/reconciliation/summary", "/reconciliation/windows"):
        response = worker.get(path)
        assert response.status_code == 404
        assert response.json()["error"] == "reconciliation_disabled"
        assert "PAYSTREAM_RECONCILIATION" in response.json()["message"]
    assert worker.get("/reconciliation/summary", headers={"Authorization": "Bearer wrong"}).status_code == 403

    lag = worker.get("/ops/api/overview").json()["lag"]
    assert topics.raw in lag
    assert topics.events not in lag and topics.ledger not in lag  # no consumer reads them again
