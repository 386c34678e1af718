"""Reference verifiers for the security tests, written from `shared/reference/providers.md`.

They are deliberately independent of `ingress/verify/`: a request the ingress accepts must be valid
for them, and a request they call valid must never be refused as "signature_invalid" by the ingress.
The vector secrets, webhook ids and tolerances here are also what the harness configures the ingress with.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fixtures.vectors import load

STRIPE_VECTORS = load("stripe_signature_cases.json")
STANDARD_VECTORS = load("standard_webhooks_cases.json")
PAYPAL_LIVE = load("paypal_live_deliveries.json")["vectors"]

# The vector secrets are configured, plus a rotated second Stripe secret.
STRIPE_SECRETS = (STRIPE_VECTORS["secret"], "whsec_security_rotated_0123456789")
STANDARD_SECRET = STANDARD_VECTORS["secret"]
STANDARD_SOURCE = "acme"
PAYPAL_WEBHOOK_IDS = ("WEBHOOK_ID", "SECDEVHOOK")
STRIPE_TOLERANCE_S = 300
STRIPE_FUTURE_S = 300
STANDARD_TOLERANCE_S = 300
PAYPAL_TOLERANCE_S = 259_200
PAYPAL_FUTURE_S = 300


def _plain_int(value: str, max_digits: int = 12) -> int | None:
    if not value or len(value) > max_digits or not all("0" <= c <= "9" for c in value):
        return None
    return int(value)


def stripe_reference_ok(body: bytes, header: str | None, now: float,
                        secrets: Sequence[str] = STRIPE_SECRETS) -> bool:
    """stripe-python's `verify_header` (first `t` wins, only v1, any v1 matches, exact compare) plus the
    ingress's documented strictness: `t` is plain ASCII digits, and it must lie within
    [now - 300 s, now + 300 s]."""
    if not header:
        return False
    items = [item.split("=", 1) for item in header.split(",")]
    stamps = [kv[1] for kv in items if len(kv) == 2 and kv[0] == "t"]
    signatures = [kv[1] for kv in items if len(kv) == 2 and kv[0] == "v1"]
    if not stamps or not signatures:
        return False
    timestamp = _plain_int(stamps[0])
    if timestamp is None or not now - STRIPE_TOLERANCE_S <= timestamp <= now + STRIPE_FUTURE_S:
        return False
    for secret in secrets:
        expected = hmac.new(secret.encode(), b"%d." % timestamp + body, hashlib.sha256).hexdigest()
        if expected in signatures:
            return True
    return False


def standard_reference_ok(body: bytes, headers: dict[str, str], now: float) -> bool:
    """The Standard Webhooks spec: HMAC-SHA256 over `id.timestamp.body` with the base64-decoded
    secret, space-separated `v1,<base64>` entries, ± 5 min; ids without "."."""
    msg_id, stamp, header = (headers.get(n) for n in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not msg_id or not stamp or not header:
        return False
    if "." in msg_id or len(msg_id) > 256 or not msg_id.isprintable():
        return False
    timestamp = _plain_int(stamp)
    if timestamp is None or abs(now - timestamp) > STANDARD_TOLERANCE_S:
        return False
    key = base64.b64decode(STANDARD_SECRET.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest())
    return any(entry == "v1," + expected.decode() for entry in header.split(" "))


def paypal_reference_ok(body: bytes, headers: dict[str, str], now: float,
                        known_certs: dict[str, x509.Certificate],
                        webhook_ids: Sequence[str] = PAYPAL_WEBHOOK_IDS) -> bool:
    """The SDKs' message `id|time|webhook_id|crc32` with SHA256withRSA, against a certificate we
    already hold for that exact URL (the fetcher is offline), valid at the transmission time, and
    the transmission time within [now - 72 h, now + 5 min]."""
    names = ("paypal-transmission-id", "paypal-transmission-time", "paypal-transmission-sig", "paypal-cert-url",
             "paypal-auth-algo")
    tid, sent, sig, url, algo = (headers.get(n) or "" for n in names)
    if not all((tid, sent, sig, url, algo)) or algo.lower() != "sha256withrsa":
        return False
    if any("|" in v or len(v) > 128 or not v.isprintable() for v in (tid, sent)):
        return False
    try:
        when = datetime.fromisoformat(sent)
        when = when.astimezone(UTC) if when.tzinfo is not None else None
    except (ValueError, OverflowError):
        return False
    if when is None or not now - PAYPAL_TOLERANCE_S <= int(when.timestamp()) <= now + PAYPAL_FUTURE_S:
        return False
    cert = known_certs.get(url)
    if cert is None or not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        return False
    try:
        signature = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        return False
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    for webhook_id in webhook_ids:
        message = f"{tid}|{sent}|{webhook_id}|{zlib.crc32(body) & 0xFFFFFFFF}".encode()
        try:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        return True
    return False
