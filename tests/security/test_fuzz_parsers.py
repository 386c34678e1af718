"""Fuzzing the signature parsers against independent reference verifiers.

Headers are assembled from the real values of the shared vectors (real timestamps, real
signatures, the other secret's signature, v0 entries) mixed with hostile tokens: unicode
digits that `int()` accepts, case changes, whitespace, empty and duplicated parameters,
separators of the other scheme. The verifier must only ever raise `VerificationError`, and
must accept exactly when the reference verifier in `reference.py` (written from the providers'
documentation) does. The normalizers get the same treatment in `test_fuzz_normalize.py`.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ingress.exceptions import VerificationError
from ingress.signing import sign_standard, sign_stripe
from ingress.verify import PayPalCertStore, PayPalVerifier, StandardVerifier, StripeVerifier
from ingress.verify.certs import cache_file_name
from paystream.core.settings import DEFAULT_PAYPAL_CERT_HOSTS
from tests.security.reference import (
    PAYPAL_LIVE,
    STANDARD_SECRET,
    STANDARD_VECTORS,
    STRIPE_SECRETS,
    STRIPE_VECTORS,
    paypal_reference_ok,
    standard_reference_ok,
    stripe_reference_ok,
)
from tests.security.support import TRICKY, RecordingFetcher

fuzz = settings(max_examples=1500, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def accepts(call: Callable[[], object]) -> bool:
    """True if accepted, False if refused with a VerificationError; anything else propagates."""
    try:
        call()
        return True
    except VerificationError as exc:
        assert exc.reason and exc.reason.islower() and " " not in exc.reason
        return False


# Stripe ----------------------------------------------------------------------------------------

T0 = STRIPE_VECTORS["timestamp"]
BODY = STRIPE_VECTORS["payload"].encode()
REAL_V1 = sign_stripe(BODY, STRIPE_SECRETS[0], T0).split("v1=")[1]
ROTATED_V1 = sign_stripe(BODY, STRIPE_SECRETS[1], T0).split("v1=")[1]
stripe_tokens = st.sampled_from([
    f"t={T0}", f"t={T0 + 1}", "t=0", f"t=0{T0}", f"t= {T0}", f"t={T0} ", f"T={T0}", "t=\u0661\u0667" + str(T0)[2:],
    f"t={T0}.0", "t=-1", "t=", "t", f"v1={REAL_V1}", f"v1={ROTATED_V1}", f"v1={REAL_V1.upper()}", f"V1={REAL_V1}",
    f" v1={REAL_V1}", f"v1={REAL_V1}=", f"v1={REAL_V1[:-1]}", f"v0={REAL_V1}", f"v2={REAL_V1}", "v1=", "=",
    f"v1=\u00e9{REAL_V1[1:]}", "v1=" + "0" * 64, "", ",", f"t={T0}=1",
]) | st.text(max_size=6) | st.sampled_from(TRICKY)


@fuzz
@given(tokens=st.lists(stripe_tokens, max_size=7), separator=st.sampled_from([",", ", ", ";", " "]),
       skew=st.sampled_from([-301, -300, -1, 0, 1, 299, 300, 301, 86_400]),
       body=st.sampled_from([BODY, BODY + b" ", BODY.replace(b"evt_", b"evt-"), b""]))
def test_stripe_header_matches_reference(tokens: list[str], separator: str, skew: int, body: bytes) -> None:
    header = separator.join(tokens)
    now = T0 + skew
    accepted = accepts(lambda: StripeVerifier(list(STRIPE_SECRETS)).verify(body, header, now))
    assert accepted == stripe_reference_ok(body, header, now), (header, skew, body)
    event(f"accepted={accepted}")


# Standard Webhooks -----------------------------------------------------------------------------

SW_ID = STANDARD_VECTORS["msg_id"]
SW_T = STANDARD_VECTORS["timestamp"]
SW_BODY = STANDARD_VECTORS["payload"].encode()
SW_SIG = sign_standard(SW_BODY, STANDARD_SECRET, SW_ID, SW_T)
OTHER_SIG = sign_standard(SW_BODY, "whsec_" + base64.b64encode(b"x" * 32).decode(), SW_ID, SW_T)
sw_entries = st.sampled_from([
    SW_SIG, OTHER_SIG, SW_SIG.upper(), SW_SIG + "=", SW_SIG.replace("v1,", "v1a,"), SW_SIG.replace("v1,", "V1,"),
    SW_SIG.replace("v1,", "v1, "), SW_SIG[:-2], "v1,", ",", "v1", "v1a,AAAA", SW_SIG.replace("v1,", "v2,"), "",
]) | st.text(max_size=6) | st.sampled_from(TRICKY)
sw_ids = st.sampled_from([SW_ID, SW_ID + ".x", SW_ID.upper(), "", " " + SW_ID, SW_ID + "\u200b", "x" * 300]) \
    | st.text(max_size=8)
sw_stamps = st.sampled_from([str(SW_T), str(SW_T + 1), f"0{SW_T}", f" {SW_T}", f"{SW_T}.0", "\u0661" + str(SW_T)[1:],
                             f"+{SW_T}", "", "9" * 13]) | st.text(max_size=4)


@fuzz
@given(entries=st.lists(sw_entries, max_size=5), msg_id=sw_ids, stamp=sw_stamps,
       separator=st.sampled_from([" ", "  ", ","]), skew=st.sampled_from([-301, -300, 0, 300, 301]),
       body=st.sampled_from([SW_BODY, SW_BODY + b"\n", b""]), drop=st.sampled_from([None, 0, 1, 2]))
def test_standard_headers_match_reference(entries: list[str], msg_id: str, stamp: str, separator: str, skew: int,
                                          body: bytes, drop: int | None) -> None:
    headers = {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": separator.join(entries)}
    if drop is not None:
        headers.pop(list(headers)[drop])
    now = SW_T + skew
    accepted = accepts(lambda: StandardVerifier("acme", [STANDARD_SECRET]).verify(body, headers, now))
    assert accepted == standard_reference_ok(body, headers, now), (headers, skew, body)
    event(f"accepted={accepted}")


# PayPal ----------------------------------------------------------------------------------------

VECTOR = PAYPAL_LIVE[0]
PP_HEADERS = {k.lower(): v for k, v in VECTOR["headers"].items()}
PP_BODY = VECTOR["body"].encode()
PP_SENT = datetime.fromisoformat(PP_HEADERS["paypal-transmission-time"]).timestamp()
PP_URL = PP_HEADERS["paypal-cert-url"]


def _flip(value: str, index: int, bit: int) -> str:
    data = bytearray(value.encode())
    if data:
        data[index % len(data)] ^= 1 << bit
    return data.decode("latin-1")


@pytest.fixture(scope="module")
def paypal_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[PayPalCertStore, RecordingFetcher, Path]:
    cache = tmp_path_factory.mktemp("paypal-fuzz")
    (cache / cache_file_name(PP_URL)).write_text(VECTOR["cert_pem"])
    fetcher = RecordingFetcher()
    return PayPalCertStore(cache, DEFAULT_PAYPAL_CERT_HOSTS, fetcher=fetcher), fetcher, cache


times = st.sampled_from([
    PP_HEADERS["paypal-transmission-time"], "2024-08-02T19:33:35+00:00", "2024-08-02T19:33:35.999Z",
    "2024-08-02T21:33:35+02:00", "2024-08-02T19:33:35", "2024-08-02 19:33:35Z", "2024-08-02", "20240802T193335Z",
    "2024-08-02T19:33:35Z|x", "\u0662024-08-02T19:33:35Z", "", "now",
])


@fuzz
@given(field=st.sampled_from(["paypal-transmission-id", "paypal-transmission-time", "paypal-transmission-sig",
                              "paypal-auth-algo", "paypal-cert-url", "body"]),
       edit=st.sampled_from(["flip", "truncate", "insert", "upper", "lower", "drop", "time"]),
       index=st.integers(0, 400), bit=st.integers(0, 7), text=st.sampled_from(TRICKY), when=times,
       skew=st.sampled_from([60, -301, 259_200, 259_201]))
def test_paypal_headers_match_reference(paypal_store: tuple[PayPalCertStore, RecordingFetcher, Path], field: str,
                                        edit: str, index: int, bit: int, text: str, when: str, skew: int) -> None:
    store, fetcher, cache = paypal_store
    headers = dict(PP_HEADERS)
    body = PP_BODY
    value = body.decode() if field == "body" else headers[field]
    if edit == "flip":
        value = _flip(value, index, bit)
    elif edit == "truncate":
        value = value[: index % (len(value) + 1)]
    elif edit == "insert":
        value = value[: index % (len(value) + 1)] + text + value[index % (len(value) + 1):]
    elif edit == "upper":
        value = value.upper()
    elif edit == "lower":
        value = value.lower()
    elif edit == "time":
        field, value = "paypal-transmission-time", when
    if field == "body":
        body = value.encode("utf-8", "surrogatepass")
    elif edit == "drop":
        headers.pop(field)
    else:
        headers[field] = value
    now = PP_SENT + skew
    fetched = len(fetcher.urls)
    verifier = PayPalVerifier(["WEBHOOK_ID"], store)
    accepted = accepts(lambda: asyncio.run(verifier.verify(body, headers, now)))
    expected = paypal_reference_ok(body, headers, now, {PP_URL: _cert()}, ["WEBHOOK_ID"])
    assert accepted == expected, (field, edit, headers, skew)
    for url in fetcher.urls[fetched:]:  # only an allow-listed host is ever asked, and only over https
        assert url.lower().startswith("https://") and url.split("/")[2].lower() in DEFAULT_PAYPAL_CERT_HOSTS
    assert sorted(p.name for p in cache.iterdir()) == [cache_file_name(PP_URL)]  # nothing foreign cached
    event(f"{field} accepted={accepted}")


@cache
def _cert() -> x509.Certificate:
    return x509.load_pem_x509_certificate(VECTOR["cert_pem"].encode())
