"""`normalize` as a whole: public surface, dispatch, and "a PaymentEvent or a NormalizeError, nothing else"."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streams.normalize
from schemas.exceptions import PaystreamError
from schemas.lifecycle import KIND_VALUES, Kind, Status
from schemas.records import PaymentEvent, WebhookEnvelope
from streams.normalize import NormalizeError, StandardMappings, StandardRule, normalize
from streams.normalize.paypal import MAPPED_TYPES as PAYPAL_TYPES
from streams.normalize.stripe import MAPPED_TYPES as STRIPE_TYPES
from tests.streams.normalize.conftest import EnvelopeFactory
from tests.streams.normalize.support import PAYLOADS, doc

STATUS_VALUES = {status.value for status in Status}
PAYLOAD_NAMES = sorted(str(path.relative_to(PAYLOADS)) for path in PAYLOADS.rglob("*.json"))
PROVIDER_OF = {"stripe": "stripe", "seed_stripe_webhook.json": "stripe", "paypal": "paypal",
               "seed_paypal_webhook.json": "paypal", "standard": "standard"}
PAID = StandardRule(
    kind=Kind.PAYMENT, status=Status.SUCCEEDED, amount_path="data.amount", currency_path="data.currency"
)
MAPPINGS = StandardMappings({("*", "payment.succeeded"): PAID})

fuzz = settings(
    max_examples=400,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)  # envelope_factory is stateless

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Keys the normalizers read, so generated objects reach past the first type check.
VOCABULARY = [
    "id", "object", "type", "event_type", "created", "data", "amount", "amount_received", "amount_capturable",
    "amount_captured", "amount_refunded", "currency", "status", "captured", "refunded", "payment_intent", "charge",
    "latest_charge", "charges", "refunds", "related_object", "resource", "create_time", "update_time", "links", "rel",
    "href", "value", "currency_code", "total", "state", "sale_id", "dispute_id", "disputed_transactions",
    "seller_transaction_id", "dispute_amount", "dispute_outcome", "outcome_code", "purchase_units", "payments",
    "captures", "authorizations", "supplementary_data", "related_ids", "order_id", "seller_payable_breakdown",
    "total_refunded_amount", "timestamp",
]
vocab_values = st.recursive(
    json_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(VOCABULARY), inner, max_size=6),
    max_leaves=25,
)
event_types = st.sampled_from([*sorted(STRIPE_TYPES | PAYPAL_TYPES), "payment.succeeded", "other.thing", ""])


def provider_of(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return PROVIDER_OF.get(base) or PROVIDER_OF[base.split("_", 1)[0]]


def outcome(envelope: WebhookEnvelope) -> PaymentEvent | None:
    """Run `normalize`; None for a NormalizeError, any other exception fails the test."""
    try:
        event = normalize(envelope, MAPPINGS)
    except NormalizeError as exc:
        assert exc.reason and exc.reason.islower() and " " not in exc.reason
        return None
    assert isinstance(event, PaymentEvent)
    assert event.payment_id and event.kind in KIND_VALUES
    assert event.status is None or event.status in STATUS_VALUES
    assert event.amount_minor is None or (type(event.amount_minor) is int and 0 <= event.amount_minor < 2**63)
    assert event.currency is None or (len(event.currency) == 3 and event.currency.isupper())
    assert event.occurred_at.tzinfo is not None and event.occurred_at.microsecond % 1000 == 0
    return event


def mutate(value: Any, steps: list[int], replacement: object) -> Any:
    """Replace the node reached by `steps` (each picks a child by index, modulo the child count)."""
    if not steps or not isinstance(value, dict | list) or not value:
        return replacement
    keys = list(value) if isinstance(value, dict) else list(range(len(value)))
    key = keys[steps[0] % len(keys)]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[key] = mutate(value[key], steps[1:], replacement)
    return copy


def test_public_surface() -> None:
    public = ["ANY_SOURCE", "NormalizeError", "StandardMappings", "StandardRule", "normalize"]
    assert sorted(streams.normalize.__all__) == public
    assert issubclass(NormalizeError, PaystreamError)
    error = NormalizeError("missing_payment_id", "resource.id")
    assert (error.reason, str(error)) == ("missing_payment_id", "missing_payment_id: resource.id")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (type(copy), copy.reason, str(copy)) == (NormalizeError, "missing_payment_id", str(error))


def test_unknown_provider(envelope_factory: EnvelopeFactory) -> None:
    with pytest.raises(NormalizeError) as caught:
        normalize(envelope_factory("adyen", b"{}", event_id="x", event_type="x"))
    assert caught.value.reason == "unknown_provider"


@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_every_fixture_normalizes_or_is_a_known_dead_letter(envelope_factory: EnvelopeFactory, name: str) -> None:
    event = outcome(envelope_factory(provider_of(name), (PAYLOADS / name).read_bytes()))
    assert (event is None) == (name == "paypal_PAYMENT.SALE.REVERSED.json")


@fuzz
@given(provider=st.sampled_from(["stripe", "paypal", "standard"]), body=st.binary(max_size=200), event_type=event_types)
def test_arbitrary_bytes(envelope_factory: EnvelopeFactory, provider: str, body: bytes, event_type: str) -> None:
    outcome(envelope_factory(provider, body, event_id="evt_fuzz", event_type=event_type))


@fuzz
@given(provider=st.sampled_from(["stripe", "paypal", "standard"]), body=vocab_values, event_type=event_types)
def test_arbitrary_json(envelope_factory: EnvelopeFactory, provider: str, body: object, event_type: str) -> None:
    data = json.dumps(body).encode()
    outcome(envelope_factory(provider, data, event_id="evt_fuzz", event_type=event_type))


@fuzz
@given(
    name=st.sampled_from(PAYLOAD_NAMES),
    edits=st.lists(st.tuples(st.lists(st.integers(min_value=0, max_value=50), max_size=6), vocab_values), max_size=3),
)
def test_mutated_fixtures(envelope_factory: EnvelopeFactory, name: str, edits: list[tuple[list[int], object]]) -> None:
    """Real payloads with a few nodes replaced by arbitrary JSON: deep paths, wrong types, huge numbers."""
    body: Any = doc(name)
    for steps, replacement in edits:
        body = mutate(body, steps, replacement)
    data = json.dumps(body).encode()  # stdlib json: NaN, Infinity and >64-bit integers reach orjson
    event_type = doc(name).get("type") or doc(name).get("event_type")
    outcome(envelope_factory(provider_of(name), data, event_id="evt_fuzz", event_type=event_type))


@pytest.mark.parametrize("field", ["payment_intent", "charge"])
def test_an_over_long_id_is_a_normalize_error_that_says_why(envelope_factory: EnvelopeFactory, field: str) -> None:
    """A 10 KB id is no provider's and would not fit a database key: the normalizer refuses it (dead letter)."""
    body = doc("stripe_charge.refunded.json")
    body["data"]["object"]["payment_intent" if field == "payment_intent" else "id"] = "x" * 10_000
    with pytest.raises(NormalizeError, match="id_too_long") as error:
        normalize(envelope_factory("stripe", body))
    assert "10000 characters (at most 255)" in str(error.value)
