"""Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).

Per the spec and its reference library: HMAC-SHA256 over "{id}.{timestamp}.{body}"
with the base64-decoded secret (after the `whsec_` prefix), base64 signatures in a
space-separated list of "v1,<sig>" entries (unknown versions ignored), constant-time
compare, and a ± tolerance on the timestamp. Ids and timestamps may not contain ".".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

from ingress.verify.base import Headers, VerificationError, Verified, check_timestamp, constant_time_in

__all__ = ["SCHEME", "StandardVerifier", "decode_secret", "sign"]

SCHEME = "standard-v1"
_PREFIX = "whsec_"


def decode_secret(secret: str) -> bytes:
    """`whsec_<base64>` (or bare base64) → key bytes."""
    raw = secret[len(_PREFIX):] if secret.startswith(_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a Standard Webhooks secret must be whsec_ followed by base64") from exc


def compute_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())


def sign(body: bytes, secret: str, msg_id: str, timestamp: int) -> str:
    """A valid `webhook-signature` header value."""
    return "v1," + compute_signature(decode_secret(secret), msg_id, timestamp, body).decode()


class StandardVerifier:
    """Verifies deliveries for one source against its secrets."""

    def __init__(self, source: str, secrets: Sequence[str], *, tolerance_s: int = 300) -> None:
        self.source = source
        self._keys = [decode_secret(s) for s in secrets]
        self._tolerance_s = tolerance_s

    def verify(self, body: bytes, headers: Headers, now: float) -> Verified:
        msg_id = headers.get("webhook-id")
        raw_timestamp = headers.get("webhook-timestamp")
        header = headers.get("webhook-signature")
        if not msg_id or not raw_timestamp or not header:
            raise VerificationError("missing_headers",
                                    "webhook-id, webhook-timestamp and webhook-signature are required")
        if "." in msg_id or len(msg_id) > 256 or not msg_id.isprintable():
            raise VerificationError("malformed_headers", "webhook-id is not a valid message id")
        if not raw_timestamp.isascii() or not raw_timestamp.isdigit() or len(raw_timestamp) > 12:
            raise VerificationError("malformed_headers", "webhook-timestamp is not an integer")
        timestamp = int(raw_timestamp)
        check_timestamp(timestamp, now, max_age_s=self._tolerance_s, max_ahead_s=self._tolerance_s)
        candidates = []
        for entry in header.split(" "):
            version, sep, signature = entry.partition(",")
            if sep and version == "v1":
                candidates.append(signature)
        if not candidates:
            raise VerificationError("no_v1_signature", "no v1 signature in webhook-signature")
        matched_key: str | None = None
        for index, key in enumerate(self._keys):
            if constant_time_in(compute_signature(key, msg_id, timestamp, body), candidates) and matched_key is None:
                matched_key = f"{self.source}#{index + 1}"
        if matched_key is None:
            raise VerificationError("signature_mismatch", "no matching signature found")
        return Verified(SCHEME, matched_key, timestamp)
