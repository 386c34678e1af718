"""Fuzzing the webhook endpoints with mutated real deliveries.

Seeds are the shared signature vectors (Stripe, Standard Webhooks, PayPal live deliveries)
and fixture payloads signed for this run (Stripe, Standard Webhooks, the PayPal dev signer).
Each example applies up to three edits — bit flips, truncation, deletion, unicode and
separator insertion, duplicated parameters and headers, case changes, cross-over from
another seed — to the body or to one header, and sends the result into the real app.

For every example:
- the status is one of the documented ones (never 5xx) and the error body names a known code;
- a 200 only if the independent reference verifier (tests/security/reference.py) calls the
  request valid, exactly one envelope is published, carrying the exact body and headers,
  and that envelope re-verifies with the real and the reference verifiers;
- a refusal publishes nothing, and a request the reference verifier calls valid is never
  refused as "signature_invalid";
- no certificate URL was ever fetched (the store only has its cache; any other URL fails).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from paystream.core.settings import DEFAULT_PAYPAL_CERT_HOSTS
from tests.security.support import (
    DOCUMENTED_STATUSES,
    ERROR_CODES,
    OPS,
    TRICKY,
    Harness,
    Mutation,
    Seed,
    as_server_sees,
    assert_published_reverify,
    mutate,
    raw_headers,
    reference_ok,
)

mutations = st.builds(
    Mutation,
    target=st.integers(0, 12),
    op=st.sampled_from(OPS),
    position=st.integers(0, 4096),
    bit=st.integers(0, 7),
    text=st.sampled_from(TRICKY) | st.text(max_size=3),
)
fuzz = settings(max_examples=1500, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def allow_listed(url: str) -> bool:
    """https (any case), a host on the PayPal list (any case), default port, no credentials."""
    parts = urlsplit(url)
    return (parts.scheme == "https" and parts.hostname in DEFAULT_PAYPAL_CERT_HOSTS and parts.port in (None, 443)
            and parts.username is None and "@" not in parts.netloc)


async def _check(harness: Harness, seed: Seed, body: bytes, raw: list[tuple[bytes, bytes]], *,
                 mutated: bool) -> int:
    harness.clock.now = seed.now
    headers = as_server_sees(raw)
    valid = reference_ok(harness, seed.path, body, headers)
    before = len(harness.publisher.records)
    fetched = len(harness.fetcher.urls)
    response = await harness.post(seed.path, body, raw)
    published = harness.publisher.records[before:]
    assert response.status in DOCUMENTED_STATUSES, (seed.name, response.status, response.body)
    if response.status == 200:
        assert valid, (seed.name, body, headers)
        assert len(published) == 1
        [envelope] = await assert_published_reverify(harness, before)
        assert envelope.body == body
        assert all(headers[name] == value for name, value in envelope.headers.items())
        assert response.json()["event_key"] == envelope.key
    else:
        assert published == []
        error = response.json()
        assert error["error"] in ERROR_CODES, error
        assert not valid or error["error"] != "signature_invalid", (seed.name, error, body, headers)
    # a mutated cert URL may only ever be fetched from an allow-listed https host
    for url in harness.fetcher.urls[fetched:]:
        assert allow_listed(url), url
    if not mutated:
        assert response.status == 200, (seed.name, response.body)
    return response.status


def test_every_seed_is_accepted_and_reverifies(harness: Harness, seed_list: list[Seed],
                                               loop: asyncio.AbstractEventLoop) -> None:
    assert {s.path for s in seed_list} == {"/webhooks/stripe", "/webhooks/paypal", "/webhooks/standard/acme"}
    for seed in seed_list:
        raw = raw_headers(seed.headers)
        loop.run_until_complete(_check(harness, seed, seed.body, raw, mutated=False))
    assert harness.fetcher.urls == []


@fuzz
@given(index=st.integers(0, 10_000), edits=st.lists(mutations, min_size=1, max_size=3))
def test_mutated_real_deliveries(harness: Harness, seed_list: list[Seed], loop: asyncio.AbstractEventLoop,
                                 index: int, edits: list[Mutation]) -> None:
    seed = seed_list[index % len(seed_list)]
    body, raw = mutate(seed, edits, seed_list)
    status = loop.run_until_complete(_check(harness, seed, body, raw, mutated=True))
    event(f"{seed.path.split('/')[2]} {status}")  # the mix shows with --hypothesis-show-statistics


@pytest.mark.parametrize("provider", ["stripe", "paypal", "standard"])
def test_header_only_edits_that_keep_the_signature_are_still_accepted(
        provider: str, harness: Harness, seed_list: list[Seed], loop: asyncio.AbstractEventLoop) -> None:
    """Edits the schemes allow: an extra v0/v1 or unknown-version entry, the auth algo in another case,
    an unrelated header; everything else about the delivery is untouched."""
    seed = next(s for s in seed_list if s.name.startswith(provider + ":"))
    extra: dict[str, str] = {"user-agent": "\u00e9vil/1.0", "x-unrelated": "v1=" + "0" * 64}
    if provider == "stripe":
        extra["stripe-signature"] = seed.headers["stripe-signature"] + ",v0=" + "f" * 64 + ",v1=" + "0" * 64
    elif provider == "paypal":
        extra["paypal-auth-algo"] = "sha256WITHrsa"
    else:
        extra["webhook-signature"] = "v1a,AAAA " + seed.headers["webhook-signature"] + " v2,xyz"
    raw = raw_headers(seed.headers | extra)
    assert loop.run_until_complete(_check(harness, seed, seed.body, raw, mutated=True)) == 200
