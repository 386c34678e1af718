"""Shared pieces of the security tests: an in-process ingress, seeds and mutations.

`Harness` is the real ingress app (`create_app`) with a recording publisher, a pinned
clock and a PayPal certificate store that can never reach the network: it knows the
dev signer's certificate and the live vector certificate from its cache, and its
fetcher only records what it was asked for. `reference_ok` asks the independent
verifiers of `reference.py` about a request the harness saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509
from fastapi import FastAPI

from ingress import create_app
from ingress.context import IngressContext
from ingress.signing import PayPalDevSigner, pem, sign_standard, sign_stripe
from ingress.verify import PayPalCertStore
from ingress.verify.certs import cache_file_name, default_roots
from paystream.core.settings import DEFAULT_PAYPAL_CERT_HOSTS, Settings
from schemas.records import WebhookEnvelope
from schemas.serde import envelope_serde
from tests.security.reference import (
    PAYPAL_FUTURE_S,
    PAYPAL_LIVE,
    PAYPAL_TOLERANCE_S,
    PAYPAL_WEBHOOK_IDS,
    STANDARD_SECRET,
    STANDARD_SOURCE,
    STANDARD_TOLERANCE_S,
    STANDARD_VECTORS,
    STRIPE_FUTURE_S,
    STRIPE_SECRETS,
    STRIPE_TOLERANCE_S,
    STRIPE_VECTORS,
    paypal_reference_ok,
    standard_reference_ok,
    stripe_reference_ok,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PAYLOADS = FIXTURES / "payloads"

ERROR_CODES = frozenset({
    "signature_invalid", "malformed_json", "missing_event_id", "empty_body", "unsupported_media_type",
    "body_too_large", "body_timeout", "malformed_headers", "client_disconnected", "unknown_source",
})
DOCUMENTED_STATUSES = frozenset({200, 400, 404, 408, 413, 415})


# The publisher double --------------------------------------------------------------------------


class RecordingPublisher:
    """The real publisher interface; keeps every record instead of producing it."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ready(self) -> bool:
        return True

    @property
    def last_error(self) -> str | None:
        return None

    async def publish(self, topic: str, key: bytes, value: bytes,
                      headers: Sequence[tuple[str, bytes]] = ()) -> tuple[int, int]:
        self.records.append((topic, key, value, list(headers)))
        return 0, len(self.records) - 1

    def envelopes(self, start: int = 0) -> list[WebhookEnvelope]:
        serde = envelope_serde()
        return [serde.decode(value) for _, _, value, _ in self.records[start:]]


class RecordingFetcher:
    """Stands in for the network: records every URL and fails (or answers `payload`)."""

    def __init__(self, payload: bytes | None = None) -> None:
        self.payload = payload
        self.urls: list[str] = []

    async def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        if self.payload is None:
            raise OSError("network disabled in security tests")
        return self.payload


@dataclass
class PinnedClock:
    now: float

    def __call__(self) -> float:
        return self.now


# The in-process ingress ------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(repr=False)
class Harness:
    app: FastAPI
    publisher: RecordingPublisher
    clock: PinnedClock
    fetcher: RecordingFetcher
    signer: PayPalDevSigner
    known_certs: dict[str, x509.Certificate]

    def __repr__(self) -> str:
        return f"Harness(now={self.clock.now}, published={len(self.publisher.records)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis' pretty printer
        printer.text(repr(self))

    @property
    def ctx(self) -> IngressContext:
        ctx: IngressContext = self.app.state.ingress
        return ctx

    # signing like the providers
    def stripe_headers(self, body: bytes, *, at: int | None = None, secret: str = STRIPE_SECRETS[0]) -> dict[str, str]:
        when = int(self.clock.now) if at is None else at
        return {"content-type": "application/json", "stripe-signature": sign_stripe(body, secret, when)}

    def standard_headers(self, body: bytes, msg_id: str, *, at: int | None = None) -> dict[str, str]:
        when = int(self.clock.now) if at is None else at
        return {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(when),
                "webhook-signature": sign_standard(body, STANDARD_SECRET, msg_id, when)}

    def paypal_headers(self, body: bytes, *, at: float | None = None, webhook_id: str = "SECDEVHOOK") -> dict[str, str]:
        when = datetime.fromtimestamp(self.clock.now if at is None else at, UTC)
        headers = self.signer.headers(body, webhook_id, when=when)
        return {"content-type": "application/json", **{k.lower(): v for k, v in headers.items()}}

    async def post(self, path: str, body: bytes, headers: dict[str, str] | list[tuple[bytes, bytes]],
                   *, chunks: Sequence[bytes] | None = None) -> Response:
        raw = headers if isinstance(headers, list) else raw_headers(headers)
        return await asgi_call(self.app, "POST", path, raw, [body] if chunks is None else list(chunks))


async def asgi_call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]],
                    chunks: Sequence[bytes] = (b"",), query: bytes = b"") -> Response:
    """One request straight into the ASGI app, as a server would deliver it (lower-case names, latin-1)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode("utf-8"), "query_string": query, "root_path": "",
        "headers": headers, "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080),
    }
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Response(start["status"], {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}, body)


def make_harness(cache_dir: Path, *, now: float, signer: PayPalDevSigner | None = None,
                 max_body_bytes: int = 1_048_576) -> Harness:
    """The real app with every external dependency replaced by a recorder; nothing leaves the process."""
    signer = signer or PayPalDevSigner.generate()
    cache_dir.mkdir(parents=True, exist_ok=True)
    known: dict[str, x509.Certificate] = {signer.cert_url: signer.leaf_cert}
    (cache_dir / cache_file_name(signer.cert_url)).write_bytes(pem(signer.leaf_cert))
    for vector in PAYPAL_LIVE:
        url = vector["headers"]["PAYPAL-CERT-URL"]
        (cache_dir / cache_file_name(url)).write_text(vector["cert_pem"])
        known[url] = x509.load_pem_x509_certificate(vector["cert_pem"].encode())
    fetcher = RecordingFetcher()
    store = PayPalCertStore(cache_dir, DEFAULT_PAYPAL_CERT_HOSTS, roots=[*default_roots(), signer.ca_cert],
                            fetcher=fetcher)
    settings = Settings(
        kafka_bootstrap="127.0.0.1:9", stripe_webhook_secrets=list(STRIPE_SECRETS),
        standard_webhook_secrets={STANDARD_SOURCE: [STANDARD_SECRET]}, paypal_webhook_id=list(PAYPAL_WEBHOOK_IDS),
        data_dir=cache_dir.parent, paypal_cert_cache_dir=cache_dir, max_body_bytes=max_body_bytes,
        stripe_tolerance_s=STRIPE_TOLERANCE_S, stripe_future_tolerance_s=STRIPE_FUTURE_S,
        standard_tolerance_s=STANDARD_TOLERANCE_S, paypal_tolerance_s=PAYPAL_TOLERANCE_S,
        paypal_future_tolerance_s=PAYPAL_FUTURE_S,
    )
    publisher = RecordingPublisher()
    clock = PinnedClock(now)
    app = create_app(settings, publisher=publisher, clock=clock, paypal_certs=store)
    return Harness(app, publisher, clock, fetcher, signer, known)


def reference_ok(harness: Harness, path: str, body: bytes, headers: dict[str, str]) -> bool:
    now = harness.clock.now
    if path == "/webhooks/stripe":
        return stripe_reference_ok(body, headers.get("stripe-signature"), now)
    if path == "/webhooks/paypal":
        return paypal_reference_ok(body, headers, now, harness.known_certs)
    if path == f"/webhooks/standard/{STANDARD_SOURCE}":
        return standard_reference_ok(body, headers, now)
    return False


def path_of(envelope: WebhookEnvelope) -> str:
    return {"stripe": "/webhooks/stripe", "paypal": "/webhooks/paypal"}.get(
        envelope.provider, f"/webhooks/standard/{envelope.source}")


async def assert_published_reverify(harness: Harness, start: int = 0) -> list[WebhookEnvelope]:
    """Every published envelope's own body + headers verify again, with the real verifiers and the
    reference ones, at the pinned time."""
    envelopes = harness.publisher.envelopes(start)
    ctx = harness.ctx
    now = harness.clock.now
    for envelope in envelopes:
        body, headers = envelope.body, envelope.headers
        if envelope.provider == "stripe":
            ctx.stripe.verify(body, headers.get("stripe-signature"), now)
        elif envelope.provider == "paypal":
            await ctx.paypal.verify(body, headers, now)
        else:
            assert envelope.provider == "standard" and envelope.source in ctx.standard
            ctx.standard[envelope.source].verify(body, headers, now)
        assert reference_ok(harness, path_of(envelope), body, headers), envelope
    return envelopes


# Seeds: real, valid deliveries -----------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Seed:
    name: str
    path: str
    body: bytes
    headers: dict[str, str]
    now: float

    def __repr__(self) -> str:
        return f"Seed({self.name!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis' pretty printer
        printer.text(repr(self))


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def seeds(harness: Harness) -> list[Seed]:
    """Valid deliveries for all three providers: the shared vectors as delivered, and fixture
    payloads signed now (Stripe, Standard Webhooks, the PayPal dev signer)."""
    now = harness.clock.now
    out: list[Seed] = []
    for case in STRIPE_VECTORS["cases"]:
        if case["result"] == "ok":  # judged one second after signing: the SDK-only tolerance cases differ
            out.append(Seed(f"stripe:{case['name']}", "/webhooks/stripe", case["payload"].encode(),
                            {"content-type": "application/json", "stripe-signature": case["header"]},
                            float(STRIPE_VECTORS["timestamp"] + 1)))
    for case in STANDARD_VECTORS["cases"]:
        if case["result"] == "ok":
            out.append(Seed(f"standard:{case['name']}", f"/webhooks/standard/{STANDARD_SOURCE}",
                            case["payload"].encode(), {"content-type": "application/json", **case["headers"]},
                            float(case["now"])))
    for vector in PAYPAL_LIVE:
        sent = datetime.fromisoformat(vector["headers"]["PAYPAL-TRANSMISSION-TIME"]).timestamp()
        out.append(Seed(f"paypal:{vector['name']}", "/webhooks/paypal", vector["body"].encode(),
                        {"content-type": "application/json", **{k.lower(): v for k, v in vector["headers"].items()}},
                        sent + 60))
    for path in sorted(PAYLOADS.glob("stripe_*.json"))[:6]:
        body = path.read_bytes()
        out.append(Seed(f"stripe:{path.name}", "/webhooks/stripe", body, harness.stripe_headers(body), now))
    for path in sorted(PAYLOADS.glob("paypal_*.json"))[:4]:
        body = path.read_bytes()
        out.append(Seed(f"paypal-dev:{path.name}", "/webhooks/paypal", body, harness.paypal_headers(body), now))
    for index, path in enumerate(sorted((PAYLOADS / "built").glob("standard_*.json"))):
        body = path.read_bytes()
        out.append(Seed(f"standard:{path.name}", f"/webhooks/standard/{STANDARD_SOURCE}", body,
                        harness.standard_headers(body, f"msg_sec_{index}"), now))
    return out


# Mutations -------------------------------------------------------------------------------------

# Characters that trip naive parsers: non-ASCII digits that `str.isdigit` and `int` accept, case
# folding surprises, invisible and control characters, separators, a surrogate-pair emoji.
TRICKY = ["\u0663", "\uff11", "\u00b2", "\u212a", "\u0130", "\u00df", "\ufeff", "\u200b", "\x00", "\r\n", "\t",
          " ", ",", "=", ".", "|", "%", "\\", "\u00e9", "\U0001f4b3", "\ud7ff", "v1=", "t=", "v1,"]


@dataclass(frozen=True)
class Mutation:
    """One edit of a request: `target` picks the body or a header (by index), `op` what to do."""

    target: int
    op: str
    position: int
    bit: int
    text: str


OPS = ("flip", "truncate", "insert", "delete", "duplicate_param", "swapcase", "repeat", "drop", "crossover",
       "whitespace", "duplicate_header")


def apply_bytes(data: bytes, m: Mutation, other: bytes) -> bytes:
    n = len(data)
    pos = m.position % (n + 1)
    if m.op == "flip" and n:
        i = m.position % n
        return data[:i] + bytes([data[i] ^ (1 << m.bit % 8)]) + data[i + 1:]
    if m.op == "truncate":
        return data[:pos]
    if m.op == "insert":
        return data[:pos] + m.text.encode("utf-8", "surrogatepass") + data[pos:]
    if m.op == "delete":
        return data[:pos] + data[pos + 1 + m.bit:]
    if m.op == "duplicate_param":
        for sep in (b",", b" "):
            parts = data.split(sep)
            if len(parts) > 1:
                i = m.position % len(parts)
                return sep.join([*parts[:i], parts[i], parts[i], *parts[i + 1:]] if m.bit % 2 else
                                [*parts[: i + 1], b"t=1", *parts[i + 1:]] if m.bit % 3 else [parts[i], *parts])
        return data + data
    if m.op == "swapcase":
        return data[:pos] + data[pos:].swapcase() if m.bit % 2 else data.upper() if m.bit % 3 else data.lower()
    if m.op == "repeat":
        return data * 2
    if m.op == "crossover":
        return other
    if m.op == "whitespace":
        return data.replace(b",", b", ").replace(b"=", b" = ") if m.bit % 2 else b" " + data + b" "
    return data


def mutate(seed: Seed, mutations: Sequence[Mutation],
           donors: Sequence[Seed]) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The seed's body and raw header list after the edits (header values go over the wire as UTF-8)."""
    body = seed.body
    headers = raw_headers(seed.headers)
    for m in mutations:
        donor = donors[m.position % len(donors)]
        slot = m.target % (len(headers) + 2)
        if slot < len(headers) and headers[slot][0] == b"content-type" and m.bit % 4:
            slot = (slot + 1) % len(headers)  # the content type only gets a quarter of its share
        if slot >= len(headers):
            body = apply_bytes(body, m, donor.body)
            continue
        name, value = headers[slot]
        if m.op == "drop":
            headers.pop(slot)
        elif m.op == "duplicate_header":
            headers.insert(slot + m.bit % 2, (name, apply_bytes(value, Mutation(0, "flip", m.position, m.bit, ""),
                                                                  b"")))
        else:
            donor_value = dict(donor.headers).get(name.decode(), "").encode("utf-8")
            headers[slot] = (name, apply_bytes(value, m, donor_value))
    return body, headers


def raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """ASGI header list as a server makes it: lower-case names, values as sent (UTF-8 on the wire)."""
    return [(k.lower().encode("latin-1"), v.encode("utf-8")) for k, v in headers.items()]


def as_server_sees(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Header dict as the ingress builds it from the ASGI scope (latin-1, last one wins)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
