"""PayPal certificate abuse beyond tests/ingress/test_paypal.py, observed at the socket level.

Name resolution is replaced for the whole test: every host name the process tries to resolve
is recorded, the allow-listed PayPal hosts resolve to a loopback address where a local TLS
server (trusted through SSL_CERT_FILE) plays the certificate host, and every other name fails.
So "no request to a non-allow-listed host" is checked where it matters — at getaddrinfo and
connect — with the real fetcher (httpx), not with a stand-in.

Covered here: a redirect to another host, a non-PEM answer, an oversized answer, a certificate
host that trickles, DNS-looking tricks in the URL (trailing dot, case, encodings, ports,
userinfo, numeric hosts), and chains with an untrusted, non-CA or expired intermediate or a
leaf without the server-auth purpose.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ingress.signing import PayPalDevSigner, make_certificate, pem
from ingress.verify import PayPalCertStore, PayPalVerifier, VerificationError
from ingress.verify.certs import MAX_CERT_BYTES, cache_file_name
from paystream.core.settings import DEFAULT_PAYPAL_CERT_HOSTS

HOST = "api.sandbox.paypal.com"
CERT_PATH = "/v1/notifications/certs/CERT-security"


@dataclass
class Resolver:
    """Replaces socket.getaddrinfo and socket.connect for the test; records every name and address."""

    address: str
    names: list[str] = field(default_factory=list)
    connects: list[tuple[str, int]] = field(default_factory=list)

    def allowed(self, name: str) -> bool:
        return name.lower() in DEFAULT_PAYPAL_CERT_HOSTS

    def foreign_names(self) -> list[str]:
        return [n for n in self.names if not self.allowed(n)]


@dataclass
class CertHost:
    """A local https server standing in for api.sandbox.paypal.com; `respond` writes the raw answer."""

    ca_file: Path
    respond: Callable[[ssl.SSLSocket], None]
    requests: list[bytes] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _server_context(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    ca, ca_key = make_certificate("security test CA", ca=True)
    leaf, key = _issue(HOST, (ca, ca_key), ca=False, names=sorted(DEFAULT_PAYPAL_CERT_HOSTS))
    (tmp_path / "ca.pem").write_bytes(pem(ca))
    (tmp_path / "host.pem").write_bytes(pem(leaf) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "host.pem")
    return context, tmp_path / "ca.pem"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    return _server_context(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def network(tls: tuple[ssl.SSLContext, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Resolver, CertHost]]:
    address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((address, 443))  # the fetcher only speaks https on the default port
    except PermissionError:
        listener.close()
        pytest.skip("binding port 443 on loopback needs root (or CAP_NET_BIND_SERVICE)")
    listener.listen(8)
    listener.settimeout(0.2)
    context, ca_file = tls
    host = CertHost(ca_file, respond=lambda conn: None)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                with context.wrap_socket(raw, server_side=True) as conn:
                    conn.settimeout(10)
                    request = b""
                    while b"\r\n\r\n" not in request:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        request += chunk
                    host.requests.append(request)
                    host.respond(conn)
            except (OSError, ssl.SSLError) as exc:
                host.errors.append(type(exc).__name__)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    resolver = Resolver(address)
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(name: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        text = name.decode() if isinstance(name, bytes) else str(name)
        resolver.names.append(text)
        if resolver.allowed(text):
            return real_getaddrinfo(address, port, socket.AF_INET, socket.SOCK_STREAM)
        raise socket.gaierror(socket.EAI_NONAME, "blocked by the security test")

    def connect(self: socket.socket, target: Any) -> Any:
        if isinstance(target, tuple):
            resolver.connects.append((target[0], target[1]))
        return real_connect(self, target)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield resolver, host
    stop.set()
    listener.close()
    thread.join(5)


def _answer(status: str, body: bytes, extra: str = "") -> Callable[[ssl.SSLSocket], None]:
    def respond(conn: ssl.SSLSocket) -> None:
        conn.sendall(f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n{extra}\r\n".encode()
                     + body)

    return respond


def _store(tmp_path: Path, roots: list[x509.Certificate] | None = None, timeout_s: float = 3.0) -> PayPalCertStore:
    return PayPalCertStore(tmp_path / "cache", DEFAULT_PAYPAL_CERT_HOSTS, roots=roots,
                           fetch_timeout_s=timeout_s)  # no fetcher given: the real httpx one


async def _reason(store: PayPalCertStore, url: str) -> str:
    with pytest.raises(VerificationError) as caught:
        await store.leaf_for(url, datetime.now(UTC))
    return caught.value.reason


def _only_the_cert_host_was_contacted(resolver: Resolver) -> None:
    assert resolver.foreign_names() == [], resolver.names
    assert {ip for ip, _ in resolver.connects} <= {resolver.address}, resolver.connects
    assert {port for _, port in resolver.connects} <= {443}


@pytest.mark.parametrize("location", ["https://evil.example/cert.pem", "http://api.sandbox.paypal.com/cert.pem",
                                      "https://127.0.0.1/cert.pem", "//evil.example/cert.pem",
                                      f"https://{HOST}{CERT_PATH}-next"])
def test_redirects_are_not_followed(location: str, network: tuple[Resolver, CertHost], tmp_path: Path) -> None:
    resolver, host = network
    host.respond = _answer("302 Found", b"", f"location: {location}\r\n")
    assert asyncio.run(_reason(_store(tmp_path), f"https://{HOST}{CERT_PATH}")) == "cert_unavailable"
    assert len(host.requests) == 1 and host.requests[0].startswith(f"GET {CERT_PATH} ".encode())
    _only_the_cert_host_was_contacted(resolver)
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_non_pem_answer_is_refused_and_not_cached(network: tuple[Resolver, CertHost], tmp_path: Path) -> None:
    resolver, host = network
    host.respond = _answer("200 OK", b"<html><body>PayPal</body></html>", "content-type: text/html\r\n")
    store = _store(tmp_path)
    url = f"https://{HOST}{CERT_PATH}"
    assert asyncio.run(_reason(store, url)) == "cert_unavailable"
    assert not store.cache_path(url).exists()
    _only_the_cert_host_was_contacted(resolver)


def test_oversized_answer_is_cut_off(network: tuple[Resolver, CertHost], tmp_path: Path) -> None:
    """A 50 MB "certificate" (chunked, no length): the fetch stops after 64 KiB; nothing is cached."""
    resolver, host = network
    sent = [0]

    def respond(conn: ssl.SSLSocket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: application/x-pem-file\r\n\r\n")
        chunk = b"-----BEGIN CERTIFICATE-----\n" + b"A" * 65_000 + b"\n"
        for _ in range(50_000_000 // len(chunk)):
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent[0] += len(chunk)

    host.respond = respond
    store = _store(tmp_path)
    started = time.monotonic()
    assert asyncio.run(_reason(store, f"https://{HOST}{CERT_PATH}")) == "cert_unavailable"
    assert time.monotonic() - started < 5
    time.sleep(0.3)
    assert sent[0] < 10_000_000, sent  # the client hung up long before the end
    assert host.errors  # … which the server saw as a broken connection
    assert not store.cache_path(f"https://{HOST}{CERT_PATH}").exists()
    _only_the_cert_host_was_contacted(resolver)
    assert MAX_CERT_BYTES == 64 * 1024


def test_trickling_cert_host_is_bounded_by_the_fetch_timeout(network: tuple[Resolver, CertHost],
                                                            tmp_path: Path) -> None:
    resolver, host = network

    def respond(conn: ssl.SSLSocket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
        for _ in range(25):
            conn.sendall(b"-")
            time.sleep(0.1)

    host.respond = respond
    started = time.monotonic()
    assert asyncio.run(_reason(_store(tmp_path, timeout_s=0.5), f"https://{HOST}{CERT_PATH}")) == "cert_unavailable"
    _only_the_cert_host_was_contacted(resolver)
    assert time.monotonic() - started < 1.5


@pytest.fixture(scope="module")
def dev_signer() -> PayPalDevSigner:
    return PayPalDevSigner.generate()


TRICKS = [
    # (url, allowed): allowed ones may reach the allow-listed host and nothing else
    ("https://api.paypal.com./v1/notifications/certs/CERT-1", False),
    ("https://api.paypal.com.evil.example./v1/notifications/certs/CERT-1", False),
    ("https://API.PayPal.COM/v1/notifications/certs/CERT-1", True),
    ("HTTPS://api.sandbox.paypal.com/v1/notifications/certs/CERT-1", True),
    ("https://api.paypal.com:443/v1/notifications/certs/CERT-1", True),
    ("https://api.paypal.com:0443/v1/notifications/certs/CERT-1", True),
    ("https://api.paypal.com:/v1/notifications/certs/CERT-1", True),
    ("https://api.paypal.com:444/v1/notifications/certs/CERT-1", False),
    ("https://api.paypal.com%2eevil.example/v1/notifications/certs/CERT-1", False),
    ("https://api%2epaypal%2ecom/v1/notifications/certs/CERT-1", False),
    ("https://api.paypal.com\u3002evil.example/v1/notifications/certs/CERT-1", False),
    ("https://api.paypal.com\uff0fevil.example/", False),
    ("https://api.paypal.com%00.evil.example/", False),
    ("https://@api.paypal.com/v1/notifications/certs/CERT-1", False),
    ("https://api.paypal.com#@evil.example/", False),
    ("https://api.paypal.com?@evil.example/", False),
    ("https:/\\evil.example/", False),
    ("https:evil.example/", False),
    ("https:///evil.example/", False),
    ("https://[api.paypal.com]/", False),
    ("https://[::ffff:127.0.0.1]/", False),
    ("https://0x7f.0.0.1/", False),
    ("https://2130706433/", False),
    ("https://127.1/", False),
    ("https://localhost/", False),
    ("https://api.paypal.com\t/x", False),
    ("https://api.paypal.com /x", False),
    ("https://xn--api-paypal-com/", False),
    ("https://api.sandbox.paypal.com.", False),
]


@pytest.mark.parametrize(("url", "allowed"), TRICKS, ids=[t[0][:60] for t in TRICKS])
def test_dns_looking_tricks(url: str, allowed: bool, network: tuple[Resolver, CertHost], tmp_path: Path,
                            dev_signer: PayPalDevSigner) -> None:
    resolver, host = network
    host.respond = _answer("404 Not Found", b"")
    signer = dataclasses.replace(dev_signer, cert_url=url)
    body = b'{"id":"WH-T"}'
    headers = {k.lower(): v for k, v in signer.headers(body, "WH").items()}
    verifier = PayPalVerifier(["WH"], _store(tmp_path, [signer.ca_cert]))
    with pytest.raises(VerificationError) as caught:
        asyncio.run(verifier.verify(body, headers, datetime.now(UTC).timestamp()))
    if allowed:
        assert caught.value.reason == "cert_unavailable"  # fetched from the real host name: 404 here
        assert len(host.requests) == 1
    else:
        assert caught.value.reason == "cert_url_rejected"
        assert resolver.names == [] and host.requests == []
    _only_the_cert_host_was_contacted(resolver)


# Chains ----------------------------------------------------------------------------------------

NAME = "messageverificationcerts.sandbox.paypal.com"


def _issue(subject: str, issuer: tuple[x509.Certificate, rsa.RSAPrivateKey], *, ca: bool,
           eku: list[x509.ObjectIdentifier] | None = None, not_before: datetime | None = None,
           days: int = 365, names: list[str] | None = None) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = not_before or datetime.now(UTC) - timedelta(days=1)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer[0].subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(start)
               .not_valid_after(start + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
                              critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names or [subject]]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku or [ExtendedKeyUsageOID.SERVER_AUTH]),
                                        critical=False)
    return builder.sign(issuer[1], hashes.SHA256()), key


@pytest.mark.parametrize("case", ["untrusted_intermediate", "intermediate_not_a_ca", "expired_intermediate",
                                  "leaf_without_server_auth", "trusted_ca_first_in_bundle", "valid"])
def test_chain_abuse(case: str, tmp_path: Path) -> None:
    root = make_certificate("trusted root", ca=True)
    rogue_root = make_certificate("rogue root", ca=True)
    if case == "untrusted_intermediate":
        inter = _issue("rogue intermediate", rogue_root, ca=True)
    elif case == "intermediate_not_a_ca":
        inter = _issue("not a CA", root, ca=False)
    elif case == "expired_intermediate":
        inter = _issue("old intermediate", root, ca=True, not_before=datetime.now(UTC) - timedelta(days=800),
                       days=400)
    else:
        inter = _issue("intermediate", root, ca=True)
    eku = [ExtendedKeyUsageOID.CODE_SIGNING] if case == "leaf_without_server_auth" else None
    leaf, key = _issue(NAME, inter, ca=False, eku=eku)
    bundle = [inter[0], leaf] if case == "trusted_ca_first_in_bundle" else [leaf, inter[0]]
    signer = PayPalDevSigner(root[0], leaf, key)
    (tmp_path / cache_file_name(signer.cert_url)).write_bytes(b"".join(pem(c) for c in bundle))
    fetched: list[str] = []

    async def fetch(url: str) -> bytes:
        fetched.append(url)
        raise OSError("offline")

    verifier = PayPalVerifier(["WH"], PayPalCertStore(tmp_path, DEFAULT_PAYPAL_CERT_HOSTS, roots=[root[0]],
                                                      intermediates=[], fetcher=fetch))
    body = b'{"id":"WH-C"}'
    headers = {k.lower(): v for k, v in signer.headers(body, "WH").items()}
    expected = {"untrusted_intermediate": "cert_untrusted", "intermediate_not_a_ca": "cert_untrusted",
                "expired_intermediate": "cert_untrusted", "leaf_without_server_auth": "cert_untrusted",
                "trusted_ca_first_in_bundle": "cert_wrong_cn", "valid": None}[case]
    now = datetime.now(UTC).timestamp()
    if expected is None:
        assert asyncio.run(verifier.verify(body, headers, now)).scheme == "paypal-rsa"
    else:
        with pytest.raises(VerificationError) as caught:
            asyncio.run(verifier.verify(body, headers, now))
        assert caught.value.reason == expected
    assert fetched == []
