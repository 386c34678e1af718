"""Signing webhooks the way the providers do, for tests, `paystream send` and benchmarks.

PayPal cannot be signed with PayPal's key, so `PayPalDevSigner` makes a local
certificate authority and a leaf named like PayPal's message-verification
certificate; the dev configuration trusts that authority
(`PAYSTREAM_PAYPAL_TRUST_ROOTS_FILE`) and finds the leaf in the certificate
cache, so no request ever leaves the machine.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ingress.verify.certs import cache_file_name
from ingress.verify.paypal import signed_message
from ingress.verify.standard import sign as sign_standard
from ingress.verify.stripe import sign as sign_stripe

__all__ = ["PayPalDevSigner", "make_certificate", "sign_standard", "sign_stripe"]

DEV_CERT_URL = "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-paystream-dev"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paystream development")])


def make_certificate(
    common_name: str,
    *,
    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None = None,
    ca: bool = False,
    not_before: datetime | None = None,
    days: int = 3650,
    san: str | None = None,
    key_size: int = 2048,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A certificate and its key; self-signed unless `issuer` is given."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    start = not_before or datetime.now(UTC) - timedelta(days=1)
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_cert.subject if issuer_cert else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san or common_name)]),
                                        critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                               ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class PayPalDevSigner:
    """A local CA + a `messageverificationcerts.sandbox.paypal.com` leaf that signs like PayPal."""

    ca_cert: x509.Certificate
    leaf_cert: x509.Certificate
    leaf_key: rsa.RSAPrivateKey
    cert_url: str = DEV_CERT_URL

    @classmethod
    def generate(cls, common_name: str = "messageverificationcerts.sandbox.paypal.com") -> PayPalDevSigner:
        ca_cert, ca_key = make_certificate("paystream dev PayPal CA", ca=True)
        leaf_cert, leaf_key = make_certificate(common_name, issuer=(ca_cert, ca_key))
        return cls(ca_cert, leaf_cert, leaf_key)

    def install(self, cache_dir: Path, roots_file: Path) -> None:
        """Put the leaf in the certificate cache and the CA in a trust-roots file."""
        cache_dir.mkdir(parents=True, exist_ok=True)
        (cache_dir / cache_file_name(self.cert_url)).write_bytes(pem(self.leaf_cert))
        roots_file.parent.mkdir(parents=True, exist_ok=True)
        roots_file.write_bytes(pem(self.ca_cert))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "paypal-dev-ca.pem").write_bytes(pem(self.ca_cert))
        (directory / "paypal-dev-leaf.pem").write_bytes(pem(self.leaf_cert))
        (directory / "paypal-dev-leaf.key").write_bytes(self.leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        (directory / "paypal-dev-leaf.key").chmod(0o600)

    @classmethod
    def load(cls, directory: Path) -> PayPalDevSigner:
        key = serialization.load_pem_private_key((directory / "paypal-dev-leaf.key").read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return cls(x509.load_pem_x509_certificate((directory / "paypal-dev-ca.pem").read_bytes()),
                   x509.load_pem_x509_certificate((directory / "paypal-dev-leaf.pem").read_bytes()), key)

    def headers(self, body: bytes, webhook_id: str, *, when: datetime | None = None,
                transmission_id: str | None = None) -> dict[str, str]:
        """The PAYPAL-* headers PayPal would send with `body`."""
        sent = (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        tid = transmission_id or str(uuid.uuid1())
        signature = self.leaf_key.sign(signed_message(tid, sent, webhook_id, body), padding.PKCS1v15(),
                                       hashes.SHA256())
        return {
            "PAYPAL-TRANSMISSION-ID": tid,
            "PAYPAL-TRANSMISSION-TIME": sent,
            "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
            "PAYPAL-CERT-URL": self.cert_url,
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
            "PAYPAL-AUTH-VERSION": "v2",
        }
