"""Defects found by the security suite, each kept as the smallest reproducer of the fixed behaviour.

Each was first a strict xfail naming the file to fix; the fixes landed and the markers went.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from ingress.exceptions import VerificationError
from ingress.verify.certs import PayPalCertStore
from paystream.core.settings import DEFAULT_PAYPAL_CERT_HOSTS
from tests.security.reference import STANDARD_SOURCE
from tests.security.support import Harness, RecordingFetcher, raw_headers

EXTREME_TIMES = ["9999-12-31T23:59:59-10:00", "0001-01-01T00:00:00+10:00"]


@pytest.mark.parametrize("when", EXTREME_TIMES)
def test_extreme_paypal_transmission_time_is_a_400(when: str, harness: Harness,
                                                   loop: asyncio.AbstractEventLoop) -> None:
    body = b'{"id":"WH-EXTREME","event_type":"PAYMENT.CAPTURE.COMPLETED"}'
    headers = harness.paypal_headers(body) | {"paypal-transmission-time": when}
    response = loop.run_until_complete(harness.post("/webhooks/paypal", body, raw_headers(headers)))
    assert (response.status, response.json()["error"]) == (400, "signature_invalid")


@pytest.mark.parametrize("provider", ["paypal", "standard"])
@pytest.mark.parametrize("when", EXTREME_TIMES)
def test_verified_event_with_an_extreme_time_is_not_a_500(provider: str, when: str, harness: Harness,
                                                          loop: asyncio.AbstractEventLoop) -> None:
    if provider == "paypal":
        body = b'{"id":"WH-EXT-%d","event_type":"PAYMENT.CAPTURE.COMPLETED","create_time":"%s"}' % (
            EXTREME_TIMES.index(when), when.encode())
        path, headers = "/webhooks/paypal", harness.paypal_headers(body)
    else:
        body = b'{"type":"payment.succeeded","timestamp":"%s","data":{}}' % when.encode()
        path = f"/webhooks/standard/{STANDARD_SOURCE}"
        headers = harness.standard_headers(body, f"msg_extreme_{EXTREME_TIMES.index(when)}")
    response = loop.run_until_complete(harness.post(path, body, raw_headers(headers)))
    assert response.status == 200, response.body  # the time is optional metadata: unreadable means absent


def test_unique_cert_urls_do_not_grow_the_store(tmp_path: Path) -> None:
    store = PayPalCertStore(tmp_path, DEFAULT_PAYPAL_CERT_HOSTS, fetcher=RecordingFetcher())

    async def attack() -> None:
        for i in range(2000):
            with contextlib.suppress(VerificationError):  # cert_unavailable, as expected
                await store._certs_for(f"https://api.paypal.com/v1/notifications/certs/CERT-{i}")

    asyncio.run(attack())
    from ingress.verify.certs import FETCHES_PER_MINUTE, MAX_REMEMBERED_FAILURES

    assert len(store._failures) <= MAX_REMEMBERED_FAILURES
    assert store.fetch_count <= FETCHES_PER_MINUTE  # a budget of outbound fetches, however many URLs arrive
