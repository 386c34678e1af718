"""Property-based: no input makes a parser raise anything but our error, or an endpoint answer 5xx."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingress import create_app
from ingress.exceptions import VerificationError
from ingress.signing import sign_stripe
from ingress.verify.certs import PayPalCertStore
from ingress.verify.standard import StandardVerifier
from ingress.verify.stripe import parse_signature_header
from paystream.core.settings import Settings
from tests.fixtures.ingress import STANDARD_SECRET, STRIPE_SECRET


class RecordingPublisher:
    """A publisher double with the real interface; records instead of producing."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ready(self) -> bool:
        return True

    async def publish(self, topic: str, key: bytes, value: bytes,
                      headers: Sequence[tuple[str, bytes]] = ()) -> tuple[int, int]:
        self.records.append((topic, key, value))
        return 0, len(self.records) - 1


anything = st.text(max_size=120)
printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=120)


@given(anything)
def test_stripe_header_parser_only_raises_verification_errors(header: str) -> None:
    try:
        timestamp, signatures = parse_signature_header(header)
    except VerificationError:
        return
    assert timestamp >= 0 and signatures


@given(st.dictionaries(st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]), anything),
       st.binary(max_size=64))
def test_standard_verifier_only_raises_verification_errors(headers: dict[str, str], body: bytes) -> None:
    with contextlib.suppress(VerificationError):
        StandardVerifier("acme", [STANDARD_SECRET]).verify(body, headers, time.time())


async def _no_network(url: str) -> bytes:
    raise OSError("no network in property tests")


_publisher = RecordingPublisher()
_app = create_app(Settings(kafka_bootstrap="127.0.0.1:9", stripe_webhook_secrets=[STRIPE_SECRET],
                           standard_webhook_secrets={"acme": [STANDARD_SECRET]}, paypal_webhook_id=["WEBHOOK_ID"],
                           data_dir=Path("/nonexistent/paystream-test")), publisher=_publisher,
                  paypal_certs=PayPalCertStore(Path("/nonexistent/paystream-test"), ["api.paypal.com"],
                                               fetcher=_no_network))
header_names = st.sampled_from([
    "stripe-signature", "content-type", "webhook-id", "webhook-timestamp", "webhook-signature",
    "paypal-transmission-id", "paypal-transmission-time", "paypal-transmission-sig", "paypal-cert-url",
    "paypal-auth-algo", "content-length", "traceparent", "x-request-id",
])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(["/webhooks/stripe", "/webhooks/paypal", "/webhooks/standard/acme",
                          "/webhooks/standard/other"]),
    headers=st.dictionaries(header_names, printable, max_size=8),
    body=st.one_of(st.binary(max_size=300), st.just(b'{"id":"evt_1","type":"x"}')),
    json_ct=st.booleans(),
)
def test_endpoints_never_answer_5xx(path: str, headers: dict[str, str], body: bytes, json_ct: bool) -> None:
    headers = {k: v for k, v in headers.items() if k != "content-length"}
    if json_ct:
        headers["content-type"] = "application/json"
    before = len(_publisher.records)

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app), base_url="http://t") as client:
            return await client.post(path, content=body, headers=headers)

    response = asyncio.run(call())
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert len(_publisher.records) == before  # nothing published for a refused request
    assert STRIPE_SECRET not in response.text and STANDARD_SECRET not in response.text


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40).filter(lambda s: '"' not in s and "\\" not in s), st.integers(-10**6, 10**6))
def test_any_signed_stripe_event_with_an_id_is_accepted(event_id: str, skew: int) -> None:
    body = ('{"id": "%s", "type": "charge.succeeded"}' % event_id).encode()
    now = int(time.time())

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app), base_url="http://t") as client:
            return await client.post("/webhooks/stripe", content=body, headers={
                "content-type": "application/json", "stripe-signature": sign_stripe(body, STRIPE_SECRET, now + skew)})

    response = asyncio.run(call())
    usable_id = bool(event_id) and event_id.isprintable()
    in_window = -300 <= skew <= 300
    try:
        valid_json = isinstance(__import__("orjson").loads(body), dict)
    except ValueError:
        valid_json = False
    expected = 200 if (usable_id and in_window and valid_json) else 400
    assert response.status_code == expected, (event_id, skew, response.text)
