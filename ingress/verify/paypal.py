"""PayPal webhook verification, offline (no postback to PayPal).

As the SDKs do it: the signed message is
`transmission_id|transmission_time|webhook_id|crc32(raw body)` (CRC as unsigned
decimal), verified with RSASSA-PKCS1-v1_5 / SHA-256 against the certificate at
`PAYPAL-CERT-URL`. Several webhook ids may be configured; any one may match.

Stricter than the SDKs: only SHA256withRSA, the certificate URL policy and chain
checks of `certs.py`, the certificate must be valid *at the transmission time*,
and the transmission time must be within the configured tolerance of our clock.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ingress.verify.base import Headers, VerificationError, Verified, check_timestamp
from ingress.verify.certs import PayPalCertStore

__all__ = ["SCHEME", "PayPalVerifier", "crc32_decimal", "signed_message"]

SCHEME = "paypal-rsa"
ALGORITHM = "sha256withrsa"
REQUIRED = (
    "paypal-transmission-id",
    "paypal-transmission-time",
    "paypal-transmission-sig",
    "paypal-cert-url",
    "paypal-auth-algo",
)


def crc32_decimal(body: bytes) -> str:
    return str(zlib.crc32(body) & 0xFFFFFFFF)


def signed_message(transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> bytes:
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{crc32_decimal(body)}".encode()


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise VerificationError("malformed_headers", "PAYPAL-TRANSMISSION-TIME has no time zone")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # year 9999 minus an offset overflows
        raise VerificationError("malformed_headers", "PAYPAL-TRANSMISSION-TIME is not an RFC 3339 time") from exc


class PayPalVerifier:
    def __init__(
        self,
        webhook_ids: Sequence[str],
        certs: PayPalCertStore,
        *,
        tolerance_s: int = 259_200,
        future_tolerance_s: int = 300,
    ) -> None:
        self._webhook_ids = list(webhook_ids)
        self._certs = certs
        self._tolerance_s = tolerance_s
        self._future_tolerance_s = future_tolerance_s

    @property
    def configured(self) -> bool:
        return bool(self._webhook_ids)

    async def verify(self, body: bytes, headers: Headers, now: float) -> Verified:
        if not self._webhook_ids:
            raise VerificationError("not_configured", "no PayPal webhook id is configured")
        values = {name: headers.get(name) or "" for name in REQUIRED}
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise VerificationError("missing_headers", "missing PayPal headers: " + ", ".join(missing))
        transmission_id = values["paypal-transmission-id"]
        transmission_time = values["paypal-transmission-time"]
        if values["paypal-auth-algo"].lower() != ALGORITHM:
            raise VerificationError("unsupported_algorithm", "only SHA256withRSA is accepted")
        for field in (transmission_id, transmission_time):
            if "|" in field or len(field) > 128 or not field.isprintable():
                raise VerificationError("malformed_headers", "transmission id or time has invalid characters")
        sent_at = _parse_time(transmission_time)
        check_timestamp(int(sent_at.timestamp()), now, max_age_s=self._tolerance_s,
                        max_ahead_s=self._future_tolerance_s)
        try:
            signature = base64.b64decode(values["paypal-transmission-sig"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise VerificationError("malformed_signature", "PAYPAL-TRANSMISSION-SIG is not base64") from exc
        cert_url = values["paypal-cert-url"]
        leaf = await self._certs.leaf_for(cert_url, sent_at)
        public_key = leaf.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise VerificationError("cert_untrusted", "certificate key is not RSA")
        for webhook_id in self._webhook_ids:
            message = signed_message(transmission_id, transmission_time, webhook_id, body)
            try:
                public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                continue
            cert_id = urlsplit(cert_url).path.rstrip("/").rsplit("/", 1)[-1]
            return Verified(SCHEME, f"{cert_id}/{webhook_id}", int(sent_at.timestamp()))
        raise VerificationError("signature_mismatch", "the PayPal signature does not match")
