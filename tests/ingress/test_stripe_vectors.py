"""Every stripe-python vector through the real HTTP endpoint.

Where the SDK is weak we are stricter, on purpose (see ingress/verify/stripe.py):
future timestamps and `tolerance=0` are rejected, and a non-ASCII signature is
a clean 400 instead of the SDK's TypeError.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from schemas.serde import envelope_serde
from tests.fixtures.kafka import drain
from tests.fixtures.vectors import load

VECTORS = load("stripe_signature_cases.json")

# case name -> (status, reason) where we deliberately differ from "ok"/"error" of the SDK
STRICTER = {
    "future_timestamp_not_rejected_by_python_sdk": (400, "timestamp_too_new"),
    "tolerance_0_disables_check": (400, "timestamp_too_old"),
}
REASONS = {
    "too_old_301s_tolerance_300": "timestamp_too_old",
    "only_v0": "no_v1_signature",
    "bad_signature": "signature_mismatch",
    "wrong_secret": "signature_mismatch",
    "tampered_payload": "signature_mismatch",
    "malformed_header": "malformed_signature_header",
    "missing_t": "malformed_signature_header",
    "non_integer_t": "malformed_signature_header",
    "uppercase_hex_signature": "signature_mismatch",
    "space_after_comma": "no_v1_signature",
    "empty_header": "missing_signature_header",
    "signature_with_timestamp_changed": "signature_mismatch",
    "stale_and_bad_signature_reports_signature_error_first": "signature_mismatch",
    "non_ascii_signature_value_raises_TypeError_not_SignatureVerificationError": "signature_mismatch",
}


def expected(case: dict[str, Any]) -> tuple[int, str | None]:
    if case["name"] in STRICTER:
        return STRICTER[case["name"]]
    if case["result"] == "ok":
        return 200, None
    return 400, REASONS[case["name"]]


def test_every_vector_has_an_expectation() -> None:
    for case in VECTORS["cases"]:
        status, reason = expected(case)
        assert (status == 200) == (reason is None)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
async def test_vector_over_http(case: dict[str, Any], topics: Any, ingress_factory: Any,
                                ingress_settings_factory: Any, consumer_factory: Any) -> None:
    settings = ingress_settings_factory(topic_prefix=topics.prefix, stripe_webhook_secrets=[case["secret"]])
    server = ingress_factory(settings, now=case["now"] if case["now"] is not None else VECTORS["timestamp"])
    body = case["payload"].encode()
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{server.url}/webhooks/stripe", content=body, headers={
            "content-type": "application/json", "stripe-signature": case["header"].encode("utf-8")})
    status, reason = expected(case)
    assert response.status_code == status, response.text
    published = await drain(await consumer_factory(topics.raw), expected=1 if status == 200 else None, idle_s=0.5)
    if status == 200:
        assert response.json()["event_key"] == "stripe:evt_test_webhook"
        assert len(published) == 1
        envelope = envelope_serde().decode(published[0].value)
        assert envelope.body == body
        assert envelope.verified_by == "stripe-v1:secret#1"
    else:
        assert response.json()["reason"] == reason
        assert case["secret"] not in response.text
        assert VECTORS["expected_v1_hex"] not in response.text
        assert published == []
