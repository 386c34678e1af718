"""PayPal: the SDK and live vectors over HTTP, and every certificate abuse we refuse."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingress.signing import PayPalDevSigner, make_certificate, pem
from ingress.verify import PayPalCertStore, PayPalVerifier, VerificationError
from ingress.verify.certs import _httpx_fetch, cache_file_name, default_roots
from ingress.verify.paypal import crc32_decimal
from schemas.serde import envelope_serde
from tests.fixtures.kafka import drain
from tests.fixtures.vectors import load, paypal_vectors

HOSTS = ["api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com", "api-m.sandbox.paypal.com"]


class RecordingFetcher:
    """Stands in for the network: records every URL it is asked for."""

    def __init__(self, payload: bytes | None = None) -> None:
        self.payload = payload
        self.urls: list[str] = []

    async def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        if self.payload is None:
            raise OSError("network disabled in tests")
        return self.payload


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def sent_at(vector: dict[str, Any]) -> float:
    return datetime.fromisoformat(vector["headers"]["PAYPAL-TRANSMISSION-TIME"]).timestamp()


def seeded_store(tmp_path: Path, vector: dict[str, Any], fetcher: RecordingFetcher) -> PayPalCertStore:
    cache = tmp_path / "certs"
    cache.mkdir(exist_ok=True)
    (cache / cache_file_name(vector["headers"]["PAYPAL-CERT-URL"])).write_text(vector["cert_pem"])
    return PayPalCertStore(cache, HOSTS, fetcher=fetcher)


def test_crc32_vector() -> None:
    vector = load("paypal_signature_cases.json")["crc32_vector"]
    assert crc32_decimal(vector["input_utf8"].encode()) == str(vector["crc32_decimal"])


@pytest.mark.parametrize("vector", paypal_vectors(), ids=lambda v: v["name"])
async def test_vector_over_http(vector: dict[str, Any], tmp_path: Path, topics: Any, ingress_factory: Any,
                                ingress_settings_factory: Any, consumer_factory: Any) -> None:
    fetcher = RecordingFetcher()
    settings = ingress_settings_factory(topic_prefix=topics.prefix, paypal_webhook_id=[vector["webhook_id"]])
    server = ingress_factory(settings, now=sent_at(vector) + 60, paypal_certs=seeded_store(tmp_path, vector, fetcher))
    body = vector["body"].encode()
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{server.url}/webhooks/paypal", content=body,
                                     headers={"content-type": "application/json", **vector["headers"]})
    assert response.status_code == 200, response.text
    assert fetcher.urls == []
    event_id = json.loads(body)["id"]
    assert response.json()["event_key"] == f"paypal:{event_id}"
    published = await drain(await consumer_factory(topics.raw), expected=1)
    envelope = envelope_serde().decode(published[0].value)
    assert envelope.body == body
    assert envelope.verified_by.endswith("/" + vector["webhook_id"])
    assert envelope.livemode is (".sandbox." not in vector["headers"]["PAYPAL-CERT-URL"])


@pytest.mark.parametrize("vector", paypal_vectors(), ids=lambda v: v["name"])
async def test_vector_negatives(vector: dict[str, Any], tmp_path: Path) -> None:
    store = seeded_store(tmp_path, vector, RecordingFetcher())
    body = vector["body"].encode()
    headers = lower(vector["headers"])
    now = sent_at(vector) + 60

    async def reason(verifier: PayPalVerifier, body: bytes, headers: dict[str, str], now: float = now) -> str:
        with pytest.raises(VerificationError) as caught:
            await verifier.verify(body, headers, now)
        return caught.value.reason

    ok = PayPalVerifier([vector["webhook_id"]], store)
    assert (await ok.verify(body, headers, now)).scheme == "paypal-rsa"
    assert await reason(PayPalVerifier(["NotToBeFound"], store), body, headers) == "signature_mismatch"
    assert await reason(ok, body.replace(b'"', b"'", 1) + b" ", headers) == "signature_mismatch"
    reserialized = json.dumps(json.loads(body)).encode()
    if reserialized != body:
        assert await reason(ok, reserialized, headers) == "signature_mismatch"
    assert await reason(ok, body, headers | {"paypal-auth-algo": "SHA1withRSA"}) == "unsupported_algorithm"
    assert await reason(ok, body, headers, now=sent_at(vector) + 4 * 86400) == "timestamp_too_old"
    assert await reason(ok, body, headers, now=sent_at(vector) - 3600) == "timestamp_too_new"
    assert await reason(ok, body, headers | {"paypal-transmission-sig": "not base64!"}) == "malformed_signature"
    assert await reason(ok, body, {k: v for k, v in headers.items() if k != "paypal-cert-url"}) == "missing_headers"


BAD_URLS = [
    "http://api.paypal.com/v1/notifications/certs/CERT-1",
    "https://evil.example/v1/notifications/certs/CERT-1",
    "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1",
    "https://apipaypal.com/v1/notifications/certs/CERT-1",
    "https://api-paypal.com/v1/notifications/certs/CERT-1",
    "https://api.paypal.co/v1/notifications/certs/CERT-1",
    "https://paypal.com/v1/notifications/certs/CERT-1",
    "https://xn--pypal-4ve.com/v1/notifications/certs/CERT-1",
    "https://93.184.216.34/v1/notifications/certs/CERT-1",
    "https://[::1]/v1/notifications/certs/CERT-1",
    "https://127.0.0.1/v1/notifications/certs/CERT-1",
    "https://api.paypal.com@evil.example/v1/notifications/certs/CERT-1",
    "https://user:pw@api.paypal.com/v1/notifications/certs/CERT-1",
    "https://api.paypal.com:8443/v1/notifications/certs/CERT-1",
    "https://api.paypal.com/v1/notifications/certs/CERT-1?redirect=https://evil.example",
    "https://api.paypal.com/v1/notifications/certs/CERT-1#x",
    "https://api.paypal.com\\@evil.example/",
    "file:///etc/passwd",
    "ftp://api.paypal.com/cert",
    "//api.paypal.com/v1/notifications/certs/CERT-1",
    "https:// api.paypal.com/",
    "",
]


@pytest.mark.parametrize("url", BAD_URLS)
async def test_cert_url_abuse_is_rejected_without_any_request(url: str, tmp_path: Path) -> None:
    fetcher = RecordingFetcher(b"never used")
    vector = paypal_vectors()[0]
    verifier = PayPalVerifier(["WEBHOOK_ID"], PayPalCertStore(tmp_path, HOSTS, fetcher=fetcher))
    headers = lower(vector["headers"]) | {"paypal-cert-url": url}
    with pytest.raises(VerificationError) as caught:
        await verifier.verify(vector["body"].encode(), headers, sent_at(vector) + 60)
    assert caught.value.reason in {"cert_url_rejected", "missing_headers"}
    assert fetcher.urls == []
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def redirecting_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that answers every request with a redirect, recording hits."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/elsewhere")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cert", hits
    server.shutdown()
    server.server_close()


async def test_fetch_never_follows_redirects(redirecting_server: tuple[str, list[str]]) -> None:
    url, hits = redirecting_server
    with pytest.raises(OSError, match="302"):
        await _httpx_fetch(url, 2.0)
    assert hits == ["/cert"]


async def test_cache_first_then_fetch_once_and_store(tmp_path: Path) -> None:
    signer = PayPalDevSigner.generate()
    fetcher = RecordingFetcher(pem(signer.leaf_cert))
    roots = [signer.ca_cert]
    url = "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-new"
    signer.cert_url = url
    body = b'{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED"}'
    headers = lower(signer.headers(body, "WH"))
    now = datetime.now(UTC).timestamp()
    verifier = PayPalVerifier(["WH"], PayPalCertStore(tmp_path, HOSTS, roots=roots, fetcher=fetcher))
    await asyncio.gather(*(verifier.verify(body, headers, now) for _ in range(5)))
    assert fetcher.urls == [url]
    assert (tmp_path / cache_file_name(url)).read_bytes() == pem(signer.leaf_cert)
    second = RecordingFetcher()
    again = PayPalVerifier(["WH"], PayPalCertStore(tmp_path, HOSTS, roots=roots, fetcher=second))
    await again.verify(body, headers, now)
    assert second.urls == []


def _store_with(tmp_path: Path, leaf_pem: bytes, url: str, roots: list[Any]) -> PayPalCertStore:
    (tmp_path / cache_file_name(url)).write_bytes(leaf_pem)
    return PayPalCertStore(tmp_path, HOSTS, roots=roots, fetcher=RecordingFetcher())


@pytest.mark.parametrize("case", ["expired", "not_yet_valid", "wrong_cn", "self_signed", "untrusted_ca",
                                  "san_mismatch"])
async def test_certificate_abuse(case: str, tmp_path: Path) -> None:
    trusted_ca, trusted_key = make_certificate("trusted dev CA", ca=True)
    name = "messageverificationcerts.sandbox.paypal.com"
    past = datetime.now(UTC) - timedelta(days=400)
    if case == "expired":
        leaf, key = make_certificate(name, issuer=(trusted_ca, trusted_key), not_before=past, days=30)
    elif case == "not_yet_valid":
        leaf, key = make_certificate(name, issuer=(trusted_ca, trusted_key),
                                     not_before=datetime.now(UTC) + timedelta(days=2))
    elif case == "wrong_cn":
        leaf, key = make_certificate("evil.example", issuer=(trusted_ca, trusted_key))
    elif case == "self_signed":
        leaf, key = make_certificate(name)
    elif case == "untrusted_ca":
        other_ca, other_key = make_certificate("other CA", ca=True)
        leaf, key = make_certificate(name, issuer=(other_ca, other_key))
    else:
        leaf, key = make_certificate(name, issuer=(trusted_ca, trusted_key), san="evil.example")
    signer = PayPalDevSigner(trusted_ca, leaf, key)
    body = b'{"id":"WH-2"}'
    headers = lower(signer.headers(body, "WH"))
    verifier = PayPalVerifier(["WH"], _store_with(tmp_path, pem(leaf), signer.cert_url, [trusted_ca]))
    with pytest.raises(VerificationError) as caught:
        await verifier.verify(body, headers, datetime.now(UTC).timestamp())
    expected = {"expired": "cert_expired", "not_yet_valid": "cert_expired", "wrong_cn": "cert_wrong_cn",
                "self_signed": "cert_untrusted", "untrusted_ca": "cert_untrusted", "san_mismatch": "cert_untrusted"}
    assert caught.value.reason == expected[case]


async def test_dev_signer_over_http_with_trust_roots_file(tmp_path: Path, topics: Any, ingress_factory: Any,
                                                          ingress_settings_factory: Any) -> None:
    signer = PayPalDevSigner.generate()
    roots_file = tmp_path / "dev-roots.pem"
    signer.install(tmp_path / "certs", roots_file)
    settings = ingress_settings_factory(topic_prefix=topics.prefix, paypal_webhook_id=["DEVHOOK"],
                                        paypal_cert_cache_dir=tmp_path / "certs", paypal_trust_roots_file=roots_file)
    assert len(default_roots(roots_file)) > 1
    server = ingress_factory(settings)
    body = b'{"id":"WH-DEV-1","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{}}'
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{server.url}/webhooks/paypal", content=body,
                                     headers={"content-type": "application/json", **signer.headers(body, "DEVHOOK")})
    assert response.status_code == 200, response.text
