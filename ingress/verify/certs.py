"""PayPal signing certificates: URL policy, on-disk cache, fetch, chain validation.

The PayPal SDKs download whatever `PAYPAL-CERT-URL` names, which turns every
webhook into a server-side request forgery and a forged-certificate risk. Here a
URL is used only when it is https on an allow-listed PayPal host (no IP literals,
credentials, odd ports, queries or redirects). It is first looked up in the cache
directory as `<sha256 hex of the exact URL>.pem` and only then fetched and stored.
The chain must lead to a trusted root, every certificate must be valid at the
transmission time, and the leaf must be a PayPal message-verification certificate.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import os
import tempfile
import time
import warnings
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import certifi
import httpx
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import PolicyBuilder, Store
from cryptography.x509.verification import VerificationError as ChainError

from ingress.verify.base import VerificationError

__all__ = ["MESSAGE_VERIFICATION_NAMES", "CertFetcher", "PayPalCertStore", "cache_file_name", "load_pem_bundle"]

log = logging.getLogger("paystream.ingress.paypal")

MESSAGE_VERIFICATION_NAMES = frozenset({
    "messageverificationcerts.paypal.com",
    "messageverificationcerts.sandbox.paypal.com",
})
MAX_CERT_BYTES = 64 * 1024
FETCHES_PER_MINUTE = 20
FAILURE_MEMORY_S = 300.0
MAX_REMEMBERED_FAILURES = 1000

CertFetcher = Callable[[str], Awaitable[bytes]]
"""Downloads a certificate URL that already passed the policy; raises on any failure."""


def cache_file_name(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest() + ".pem"


def load_pem_bundle(data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        return []


def _bundled(name: str) -> list[x509.Certificate]:
    data = resources.files("ingress.verify").joinpath("certs", name).read_bytes()
    return load_pem_bundle(data)


@cache
def _public_roots() -> tuple[x509.Certificate, ...]:
    with warnings.catch_warnings():
        # certifi carries a few legacy roots with non-positive serial numbers
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return tuple(load_pem_bundle(Path(certifi.where()).read_bytes()))


def default_roots(extra_file: Path | None = None) -> list[x509.Certificate]:
    """Bundled DigiCert EV root + the certifi bundle + an optional operator PEM file."""
    roots = _bundled("digicert_high_assurance_ev_root_ca.pem")
    roots += _public_roots()
    if extra_file is not None:
        extra = load_pem_bundle(extra_file.read_bytes())
        if not extra:
            raise ValueError(f"{extra_file} holds no PEM certificate")
        roots += extra
    return roots


def default_intermediates() -> list[x509.Certificate]:
    return _bundled("digicert_sha2_ev_server_ca.pem")


@dataclass(frozen=True, slots=True)
class _ValidChain:
    leaf: x509.Certificate
    chain: Sequence[x509.Certificate]


async def _httpx_fetch(url: str, timeout_s: float) -> bytes:
    async with asyncio.timeout(timeout_s):  # httpx's timeout is per read; this bounds the whole fetch
        return await _httpx_get(url, timeout_s)


async def _httpx_get(url: str, timeout_s: float) -> bytes:
    async with httpx.AsyncClient(follow_redirects=False, timeout=timeout_s) as client, \
            client.stream("GET", url) as response:
        if response.status_code != 200:
            raise OSError(f"HTTP {response.status_code}")
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > MAX_CERT_BYTES:
                raise OSError("certificate response too large")
        return bytes(data)


class PayPalCertStore:
    """Returns the validated leaf certificate for a cert URL at a given time."""

    def __init__(
        self,
        cache_dir: Path,
        allowed_hosts: Iterable[str],
        *,
        roots: Sequence[x509.Certificate] | None = None,
        intermediates: Sequence[x509.Certificate] | None = None,
        fetcher: CertFetcher | None = None,
        fetch_timeout_s: float = 5.0,
    ) -> None:
        self._cache_dir = cache_dir
        self._allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self._store = Store(list(roots) if roots is not None else default_roots())
        self._intermediates = list(intermediates) if intermediates is not None else default_intermediates()
        self._fetcher = fetcher or (lambda url: _httpx_fetch(url, fetch_timeout_s))
        self._pem_by_url: dict[str, list[x509.Certificate]] = {}
        # one fetch at a time, failures remembered for a while, and a budget of fetches per minute:
        # ever-new allow-listed URLs in unauthenticated requests must not grow memory or outbound calls
        self._fetch_lock = asyncio.Lock()
        self._failures: OrderedDict[str, float] = OrderedDict()
        self._fetch_times: deque[float] = deque()
        self.fetch_count = 0

    # Policy ------------------------------------------------------------------

    def check_url(self, url: str) -> None:
        """Raise `cert_url_rejected` unless `url` is https on an allow-listed host."""
        if len(url) > 500 or not url.isascii() or any(c.isspace() or ord(c) < 32 for c in url) or "\\" in url:
            raise VerificationError("cert_url_rejected", "certificate URL is not a plain https URL")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise VerificationError("cert_url_rejected", "certificate URL cannot be parsed") from exc
        host = (parts.hostname or "").lower()
        if parts.scheme != "https":
            raise VerificationError("cert_url_rejected", "certificate URL must use https")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise VerificationError("cert_url_rejected", "certificate URL must not carry credentials")
        if port not in (None, 443):
            raise VerificationError("cert_url_rejected", "certificate URL must use the default https port")
        if parts.query or parts.fragment:
            raise VerificationError("cert_url_rejected", "certificate URL must not have a query or fragment")
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            pass
        else:
            raise VerificationError("cert_url_rejected", "certificate URL must name a host, not an IP address")
        if host not in self._allowed_hosts:
            raise VerificationError("cert_url_rejected", "certificate URL host is not an allow-listed PayPal host")

    # Cache and fetch -----------------------------------------------------------

    def cache_path(self, url: str) -> Path:
        return self._cache_dir / cache_file_name(url)

    def _may_fetch(self, url: str) -> bool:
        now = time.monotonic()
        failed_at = self._failures.get(url)
        if failed_at is not None and now - failed_at < FAILURE_MEMORY_S:
            return False
        while self._fetch_times and now - self._fetch_times[0] > 60:
            self._fetch_times.popleft()
        return len(self._fetch_times) < FETCHES_PER_MINUTE

    def _remember_failure(self, url: str) -> None:
        self._failures[url] = time.monotonic()
        self._failures.move_to_end(url)
        while len(self._failures) > MAX_REMEMBERED_FAILURES:
            self._failures.popitem(last=False)

    async def _certs_for(self, url: str) -> list[x509.Certificate]:
        certs = self._pem_by_url.get(url)
        if certs is not None:
            return certs
        async with self._fetch_lock:
            certs = self._pem_by_url.get(url)
            if certs is not None:
                return certs
            path = self.cache_path(url)
            data: bytes | None = None
            if path.is_file():
                data = path.read_bytes()
            else:
                if not self._may_fetch(url):
                    raise VerificationError("cert_unavailable", "the signing certificate is not available right now")
                self.fetch_count += 1
                self._fetch_times.append(time.monotonic())
                try:
                    data = await self._fetcher(url)
                except Exception as exc:  # any transport failure means "no certificate"
                    self._remember_failure(url)
                    log.warning("paypal certificate fetch failed", extra={"cert_url": url, "error": type(exc).__name__})
                    raise VerificationError("cert_unavailable", "the signing certificate could not be fetched") from exc
            certs = load_pem_bundle(data)
            if not certs:
                self._remember_failure(url)
                raise VerificationError("cert_unavailable", "the certificate URL did not return a PEM certificate")
            if not path.is_file():
                self._store_in_cache(path, data)
            self._pem_by_url[url] = certs
            return certs

    def _store_in_cache(self, path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("paypal certificate cache not writable", extra={"path": str(path), "error": str(exc)})

    # Validation ------------------------------------------------------------------

    async def leaf_for(self, url: str, at: datetime) -> x509.Certificate:
        """The leaf certificate behind `url`, validated as of `at` (the transmission time)."""
        self.check_url(url)
        certs = await self._certs_for(url)
        return self._validate(certs, at).leaf

    def _validate(self, certs: list[x509.Certificate], at: datetime) -> _ValidChain:
        leaf = certs[0]
        names = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        common_name = str(names[0].value).lower() if names else ""
        if common_name not in MESSAGE_VERIFICATION_NAMES:
            raise VerificationError("cert_wrong_cn", "certificate is not a PayPal message-verification certificate")
        if not leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc:
            raise VerificationError("cert_expired", "certificate is not valid at the transmission time")
        verifier = PolicyBuilder().store(self._store).time(at).build_server_verifier(x509.DNSName(common_name))
        try:
            chain = verifier.verify(leaf, [*certs[1:], *self._intermediates])
        except ChainError as exc:
            raise VerificationError("cert_untrusted", "certificate does not chain to a trusted root") from exc
        return _ValidChain(leaf, chain)
