"""Coverage-guided fuzzing (atheris / libFuzzer) of the signature parsers and the normalizers.

Run by hand or with `make fuzz` (not part of `make test`):

    .venv/bin/python tests/security/fuzz_atheris.py -max_total_time=60
    .venv/bin/python tests/security/fuzz_atheris.py -atheris_runs=200000 some/corpus/dir

Without a corpus directory it uses (and seeds, when empty) $TMPDIR/paystream-fuzz-corpus.

The first input byte picks the target; the rest is newline-separated header values (decoded
as latin-1, as the HTTP server hands them over) followed by the body, so the seeds are the
real headers and bodies of the shared vectors and fixture payloads. For PayPal a header
line "=" keeps the real value.
A target may return a result or raise its documented error (VerificationError /
NormalizeError); anything else is a crash, and libFuzzer saves the input that caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import atheris
import orjson

with atheris.instrument_imports(include=["ingress", "streams", "schemas"]):
    from ingress.exceptions import VerificationError
    from ingress.verify import PayPalCertStore, PayPalVerifier, StandardVerifier, StripeVerifier
    from ingress.verify.certs import cache_file_name
    from ingress.verify.stripe import parse_signature_header
    from paystream.core.settings import DEFAULT_PAYPAL_CERT_HOSTS
    from schemas.records import WebhookEnvelope
    from streams.normalize import NormalizeError, normalize

ROOT = Path(__file__).resolve().parents[1] / "fixtures"
VECTORS = {name: json.loads((ROOT / "vectors" / name).read_text()) for name in (
    "stripe_signature_cases.json", "standard_webhooks_cases.json", "paypal_live_deliveries.json")}
STRIPE = VECTORS["stripe_signature_cases.json"]
STANDARD = VECTORS["standard_webhooks_cases.json"]
PAYPAL = VECTORS["paypal_live_deliveries.json"]["vectors"][0]
PAYPAL_HEADERS = ("paypal-transmission-id", "paypal-transmission-time", "paypal-transmission-sig",
                  "paypal-cert-url", "paypal-auth-algo")
TARGETS = ("stripe", "standard", "paypal", "normalize")
RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)

_stripe = StripeVerifier([STRIPE["secret"]])
_standard = StandardVerifier("acme", [STANDARD["secret"]])
_cache = Path(tempfile.gettempdir()) / "paystream-atheris-certs"
_cache.mkdir(exist_ok=True)
(_cache / cache_file_name(PAYPAL["headers"]["PAYPAL-CERT-URL"])).write_text(PAYPAL["cert_pem"])


async def _offline(url: str) -> bytes:
    raise OSError("offline")


_paypal = PayPalVerifier(["WEBHOOK_ID"], PayPalCertStore(_cache, DEFAULT_PAYPAL_CERT_HOSTS, fetcher=_offline))
_loop = asyncio.new_event_loop()


def _envelope(provider: str, body: bytes) -> WebhookEnvelope:
    """As the ingress builds it: the id and type come from the body when usable (else the
    normalizers would stop at the envelope check)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    doc = doc if isinstance(doc, dict) else {}
    event_id, event_type = doc.get("id"), doc.get("event_type" if provider == "paypal" else "type")
    return WebhookEnvelope(
        envelope_id="00000000-0000-4000-8000-000000000000", provider=provider, source="acme",
        provider_event_id=event_id if isinstance(event_id, str) and event_id else "evt_fuzz",
        event_type=event_type if isinstance(event_type, str) else "", received_at=RECEIVED, verified_by="fuzz",
        body=body, content_type="application/json")


def _split(data: bytes, count: int) -> tuple[list[str], bytes]:
    parts = data.split(b"\n", count)
    parts += [b""] * (count + 1 - len(parts))
    return [p.decode("latin-1") for p in parts[:count]], parts[count]


def one_input(data: bytes) -> None:
    if not data:
        return
    target, rest = TARGETS[data[0] % len(TARGETS)], data[1:]
    if target == "stripe":
        [header], body = _split(rest, 1)
        with contextlib.suppress(VerificationError):
            parse_signature_header(header)
        with contextlib.suppress(VerificationError):
            _stripe.verify(body, header, STRIPE["timestamp"] + 1)
    elif target == "standard":
        values, body = _split(rest, 3)
        headers = dict(zip(("webhook-id", "webhook-timestamp", "webhook-signature"), values, strict=True))
        with contextlib.suppress(VerificationError):
            _standard.verify(body, headers, STANDARD["timestamp"])
    elif target == "paypal":
        values, body = _split(rest, len(PAYPAL_HEADERS))
        real = {k.lower(): v for k, v in PAYPAL["headers"].items()}
        headers = {name: real[name] if value == "=" else value for name, value in zip(PAYPAL_HEADERS, values,
                                                                                       strict=True)}
        with contextlib.suppress(VerificationError):
            _loop.run_until_complete(_paypal.verify(body, headers, 1_722_627_275))
    else:
        provider = ("stripe", "paypal", "standard")[rest[0] % 3] if rest else "stripe"
        with contextlib.suppress(NormalizeError):
            normalize(_envelope(provider, rest[1:]))


def write_seeds(directory: Path) -> None:
    """One seed per real header/body, prefixed with the byte that selects its target."""
    seeds: list[bytes] = []
    for case in STRIPE["cases"]:
        seeds.append(b"\x00" + case["header"].encode() + b"\n" + case["payload"].encode())
    for case in STANDARD["cases"]:
        values = [case["headers"].get(n) or case["headers"].get(n.title(), "") for n in
                  ("webhook-id", "webhook-timestamp", "webhook-signature")]
        seeds.append(b"\x01" + "\n".join(values).encode() + b"\n" + case["payload"].encode())
    real = {k.lower(): v for k, v in PAYPAL["headers"].items()}
    seeds.append(b"\x02" + b"=\n" * len(PAYPAL_HEADERS) + PAYPAL["body"].encode())
    seeds.append(b"\x02" + "\n".join(real[n] for n in PAYPAL_HEADERS).encode() + b"\n" + PAYPAL["body"].encode())
    payloads = ROOT / "payloads"
    for path in sorted(payloads.rglob("*.json")):
        provider = 0 if "stripe" in path.name else 1 if "paypal" in path.name else 2
        seeds.append(bytes([3, provider]) + path.read_bytes())
    for index, seed in enumerate(seeds):
        (directory / f"seed-{index:03d}").write_bytes(seed)


def main() -> None:
    argv = list(sys.argv)
    corpora = [Path(a) for a in argv[1:] if not a.startswith("-")]
    if not corpora:  # a corpus kept between runs, so a longer session builds on the last one
        corpora = [Path(tempfile.gettempdir()) / "paystream-fuzz-corpus"]
        argv.append(str(corpora[0]))
    corpora[0].mkdir(parents=True, exist_ok=True)
    if not any(corpora[0].iterdir()):
        write_seeds(corpora[0])
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
