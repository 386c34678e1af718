"""Stripe `Stripe-Signature` verification, as stripe-python does it and stricter.

Same as the SDK: HMAC-SHA256 (hex, lower case) with the whole `whsec_…` string as
the key over `"{t}.{raw body}"`; only `v1` counts; any matching `v1` passes; the
signature is checked before the timestamp; keys are matched exactly (no trim).

Stricter than the SDK: the timestamp check can never be switched off, timestamps
too far in the future are rejected too, `t` must be plain digits, and a
non-ASCII signature is a mismatch instead of a `TypeError`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from ingress.verify.base import VerificationError, Verified, check_timestamp, constant_time_in

__all__ = ["SCHEME", "StripeVerifier", "parse_signature_header", "sign"]

SCHEME = "stripe-v1"
HEADER = "stripe-signature"


def parse_signature_header(header: str) -> tuple[int, list[str]]:
    """`t=…,v1=…,v1=…,v0=…` → (timestamp, v1 signatures). The first `t` wins."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            continue
        if key == "t" and timestamp is None:
            if not value.isascii() or not value.isdigit() or len(value) > 12:
                raise VerificationError("malformed_signature_header", "Stripe-Signature timestamp is not an integer")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise VerificationError("malformed_signature_header", "unable to extract timestamp and signatures from header")
    if not signatures:
        raise VerificationError("no_v1_signature", "no signatures found with expected scheme v1")
    return timestamp, signatures


def compute_signature(secret: str, timestamp: int, body: bytes) -> bytes:
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return mac.hexdigest().encode("ascii")


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """A valid `Stripe-Signature` header value (for tests, `paystream send`, benchmarks)."""
    return f"t={timestamp},v1={compute_signature(secret, timestamp, body).decode()}"


class StripeVerifier:
    """Verifies one request against all active endpoint secrets (rotation)."""

    def __init__(self, secrets: Sequence[str], *, tolerance_s: int = 300, future_tolerance_s: int = 300) -> None:
        self._secrets = list(secrets)
        self._tolerance_s = tolerance_s
        self._future_tolerance_s = future_tolerance_s

    @property
    def configured(self) -> bool:
        return bool(self._secrets)

    def verify(self, body: bytes, header: str | None, now: float) -> Verified:
        if not self._secrets:
            raise VerificationError("not_configured", "no Stripe webhook secret is configured")
        if not header:
            raise VerificationError("missing_signature_header", "the Stripe-Signature header is missing")
        timestamp, signatures = parse_signature_header(header)
        matched_key: str | None = None
        for index, secret in enumerate(self._secrets):
            if constant_time_in(compute_signature(secret, timestamp, body), signatures) and matched_key is None:
                matched_key = f"secret#{index + 1}"
        if matched_key is None:
            raise VerificationError("signature_mismatch",
                                    "no signatures found matching the expected signature for payload")
        check_timestamp(timestamp, now, max_age_s=self._tolerance_s, max_ahead_s=self._future_tolerance_s)
        return Verified(SCHEME, matched_key, timestamp)
