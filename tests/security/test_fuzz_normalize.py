"""Fuzzing the normalizers with byte-level mutations of real payloads.

tests/streams/normalize/ already replaces JSON nodes and feeds arbitrary bytes; here every
fixture payload is damaged the way a buggy or hostile sender damages bytes (bit flips,
truncation, unicode and separator insertion, duplicated keys, nesting bombs, huge numbers),
wrapped in an envelope exactly as the ingress would build it (id and type taken from the
damaged body, so the normalizers get past the envelope check), and then:

- `normalize` returns a `PaymentEvent` or raises `NormalizeError` — nothing else;
- an event it returns can be encoded by the worker's Avro serde (so it cannot fail one stage
  later instead) and its canonical fields are in range.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schemas.lifecycle import Status
from schemas.records import PaymentEvent, WebhookEnvelope
from schemas.serde import payment_event_serde
from streams.normalize import NormalizeError, StandardMappings, StandardRule, normalize
from tests.security.support import PAYLOADS, TRICKY, Mutation, apply_bytes

NAMES = sorted(str(p.relative_to(PAYLOADS)) for p in PAYLOADS.rglob("*.json"))
RECEIVED = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
MAPPINGS = StandardMappings({("*", "payment.succeeded"): StandardRule(
    kind="payment", status=Status.SUCCEEDED, amount_path="data.amount", currency_path="data.currency")})
SERDE = payment_event_serde()
OPS = ("flip", "truncate", "insert", "delete", "duplicate_param", "swapcase", "repeat", "whitespace", "dupkey")


def provider_of(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return "stripe" if base.startswith(("stripe", "seed_stripe")) else \
        "paypal" if base.startswith(("paypal", "seed_paypal")) else "standard"


def envelope_for(provider: str, body: bytes) -> WebhookEnvelope:
    """As the ingress builds it: id and type from the body when they are usable."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    doc = doc if isinstance(doc, dict) else {}
    raw_id = doc.get("id")
    raw_type = doc.get("type") if provider != "paypal" else doc.get("event_type")
    event_id = raw_id if isinstance(raw_id, str) and raw_id and raw_id.isprintable() and len(raw_id) <= 255 \
        else "msg_fuzz"
    return WebhookEnvelope(
        envelope_id="2b9f6c7e-3d1a-4d8e-9a55-6f1f3c2b7a10", provider=provider, source="acme",
        provider_event_id=event_id if provider != "standard" else f"acme:{event_id}",
        event_type=raw_type if isinstance(raw_type, str) and raw_type else "unknown", received_at=RECEIVED,
        verified_by="test:fuzz", body=body, content_type="application/json", livemode=False,
    )


def check(provider: str, body: bytes) -> str:
    try:
        result = normalize(envelope_for(provider, body), MAPPINGS)
    except NormalizeError as exc:
        assert exc.reason and exc.reason.islower() and " " not in exc.reason, exc.reason
        return exc.reason
    assert isinstance(result, PaymentEvent)
    assert result.payment_id and result.event_key.startswith(provider + ":")
    assert result.amount_minor is None or 0 <= result.amount_minor < 2**63
    assert result.refunded_total_minor is None or 0 <= result.refunded_total_minor < 2**63
    assert result.currency is None or (len(result.currency) == 3 and result.currency.isascii()
                                       and result.currency.isupper())
    assert result.occurred_at.tzinfo is not None
    assert SERDE.decode(SERDE.encode(result)) == result  # the worker's next step must not fail on it
    return "event"


def _dupkey(body: bytes, m: Mutation) -> bytes:
    """Repeat one `"key": value` pair with a different value (JSON parsers keep the last one)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    if not isinstance(doc, dict) or not doc:
        return body
    key = list(doc)[m.position % len(doc)]
    replacement = [0, -1, "", None, [], {}, 2**63, "9" * 40, "\u0663", True][m.bit % 10]
    tail = json.dumps({key: replacement})[1:]
    return body.rstrip().rstrip(b"}") + b"," + tail.encode()


mutations = st.builds(Mutation, target=st.just(0), op=st.sampled_from(OPS), position=st.integers(0, 8000),
                      bit=st.integers(0, 9), text=st.sampled_from(TRICKY) | st.text(max_size=3))
fuzz = settings(max_examples=1200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(name=st.sampled_from(NAMES), edits=st.lists(mutations, min_size=1, max_size=4))
def test_mutated_payload_bytes(name: str, edits: list[Mutation]) -> None:
    body = (PAYLOADS / name).read_bytes()
    for m in edits:
        body = _dupkey(body, m) if m.op == "dupkey" else apply_bytes(body, m, body)
    event(check(provider_of(name), body))


HOSTILE = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b'{"id":"evt_1","type":"payment_intent.succeeded","created":1e999,"data":{"object":{"amount":1e400}}}',
    b'{"id":"evt_1","type":"payment_intent.succeeded","created":-1,"data":{"object":{"id":"pi_1",'
    b'"object":"payment_intent","amount":340282366920938463463374607431768211456,"currency":"usd"}}}',
    b'{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1","object":"payment_intent",'
    b'"amount":NaN,"currency":"usd"}}}',
    b'{"id":"evt_\\ud800","type":"charge.succeeded","data":{"object":{"id":"ch_\\udfff"}}}',
    b'{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{"id":"C1","amount":{"value":"1e999999",'
    b'"currency_code":"USD"}}}',
    b'{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{"id":"C1","amount":{"value":"'
    + b"9" * 5000 + b'","currency_code":"USD"}}}',
    b'{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED","create_time":"9999-12-31T23:59:59-10:00",'
    b'"resource":{"id":"C1","status":"COMPLETED","amount":{"value":"1.00","currency_code":"USD"},'
    b'"create_time":"0001-01-01T00:00:00+10:00"}}',
    b'{"type":"payment.succeeded","timestamp":"0001-01-01T00:00:00+01:00","data":{"id":"p1","amount":"1",'
    b'"currency":"\xc3\xa9UR"}}',
    b'{"type":"payment.succeeded","data":{"id":"p1","amount":"-0","currency":"usd"}}',
    b'\xef\xbb\xbf{"id":"evt_bom"}',
    b'{"id":"evt_1","id":"evt_2","type":"charge.succeeded"}',
    b"\x00" * 64,
    b"",
]


@pytest.mark.parametrize("provider", ["stripe", "paypal", "standard"])
@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_hostile_json(provider: str, index: int) -> None:
    check(provider, HOSTILE[index])

