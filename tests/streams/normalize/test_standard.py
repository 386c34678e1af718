"""Standard Webhooks payloads: kind "other" by default, mapped by `StandardMappings` rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.lifecycle import Kind, Status
from streams.normalize import ANY_SOURCE, NormalizeError, StandardMappings, StandardRule, normalize
from streams.normalize.standard import value_at
from tests.streams.normalize.conftest import RECEIVED_AT, EnvelopeFactory
from tests.streams.normalize.support import core, doc, raw

PAID = StandardRule(
    kind=Kind.PAYMENT,
    status=Status.SUCCEEDED,
    amount_path="data.amount",
    currency_path="data.currency",
    provider_status_path="data.status",
)
KWD_INVOICE = StandardRule(
    kind=Kind.PAYMENT,
    status=Status.SUCCEEDED,
    payment_id_path="data.invoice.payments.0.ref",
    amount_path="data.invoice.payments.0.total",
    currency_path="data.invoice.payments.0.currency",
    amount_is_decimal=True,
)


def test_unmapped_event_is_other_keyed_by_data_id(envelope_factory: EnvelopeFactory) -> None:
    event = normalize(envelope_factory("standard", raw("built/standard_payment.succeeded.json"), source="shop"))
    assert core(event) == {
        "payment_id": "pay_2x9Kd0",
        "kind": "other",
        "status": None,
        "amount_minor": None,
        "currency": None,
        "occurred_at": datetime(2024, 6, 1, 12, 0, 0, 123000, tzinfo=UTC),  # truncated to ms
        "provider_status": None,
        "related_ids": {},
        "refunded_total_minor": None,
    }
    assert (event.event_key, event.event_type) == ("standard:msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "payment.succeeded")


def test_without_data_id_the_webhook_id_is_the_payment_id(envelope_factory: EnvelopeFactory) -> None:
    event = normalize(envelope_factory("standard", raw("built/standard_ping.json"), event_id="msg_ping_1"))
    assert (event.payment_id, event.kind) == ("msg_ping_1", "other")
    assert event.occurred_at == datetime(2024, 6, 1, 12, tzinfo=UTC)


def test_mapped_event(envelope_factory: EnvelopeFactory) -> None:
    mappings = StandardMappings({("shop", "payment.succeeded"): PAID})
    envelope = envelope_factory("standard", raw("built/standard_payment.succeeded.json"), source="shop")
    event = normalize(envelope, mappings)
    assert core(event) == {
        "payment_id": "pay_2x9Kd0",
        "kind": "payment",
        "status": "succeeded",
        "amount_minor": 1250,
        "currency": "EUR",
        "occurred_at": datetime(2024, 6, 1, 12, 0, 0, 123000, tzinfo=UTC),
        "provider_status": "paid",
        "related_ids": {},
        "refunded_total_minor": None,
    }
    assert type(event.kind) is str and type(event.status) is str


def test_decimal_amount_through_list_paths(envelope_factory: EnvelopeFactory) -> None:
    mappings = StandardMappings({(ANY_SOURCE, "invoice.paid"): KWD_INVOICE})
    event = normalize(envelope_factory("standard", raw("built/standard_invoice.paid.kwd.json")), mappings)
    assert (event.payment_id, event.amount_minor, event.currency, event.occurred_at) == (
        "kw-pay-1", 1250, "KWD", datetime(2024, 6, 1, 10, 30, tzinfo=UTC)
    )


def test_rules_are_per_source_with_any_source_as_fallback(envelope_factory: EnvelopeFactory) -> None:
    refund = StandardRule(kind=Kind.REFUND, status=Status.PARTIALLY_REFUNDED)
    mappings = StandardMappings({("shop", "payment.succeeded"): PAID, (ANY_SOURCE, "payment.succeeded"): refund})
    body = raw("built/standard_payment.succeeded.json")
    assert normalize(envelope_factory("standard", body, source="shop"), mappings).kind == "payment"
    other = normalize(envelope_factory("standard", body, source="billing"), mappings)
    assert (other.kind, other.status, other.amount_minor) == ("refund", "partially_refunded", None)
    assert normalize(envelope_factory("standard", body, source="shop"), StandardMappings()).kind == "other"


def test_mappings_do_not_apply_to_stripe_or_paypal(envelope_factory: EnvelopeFactory) -> None:
    mappings = StandardMappings({(ANY_SOURCE, "customer.created"): PAID})
    event = normalize(envelope_factory("stripe", raw("built/stripe_customer.created.json")), mappings)
    assert event.kind == "other"


def test_rule_config_is_checked_and_coerced() -> None:
    rule = StandardRule(kind="payment", status="failed")  # type: ignore[arg-type]
    assert (rule.kind, rule.status) == (Kind.PAYMENT, Status.FAILED)
    with pytest.raises(ValueError, match="bogus"):
        StandardRule(kind="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="paid"):
        StandardRule(kind=Kind.PAYMENT, status="paid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="together"):
        StandardRule(kind=Kind.PAYMENT, amount_path="data.amount")


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("data.id", None, "missing_payment_id"),
        ("data.id", 17, "missing_payment_id"),
        ("data.amount", None, "missing_amount"),
        ("data.amount", "12.50", "invalid_amount"),
        ("data.amount", -1, "negative_amount"),
        ("data.currency", None, "missing_currency"),
        ("data.currency", "euro", "invalid_currency"),
        ("timestamp", "June 1st", "invalid_time"),
        ("timestamp", "2024-06-01T12:00:00", "invalid_time"),
    ],
)
def test_mapped_impossible_data(envelope_factory: EnvelopeFactory, path: str, value: object, reason: str) -> None:
    body = doc("built/standard_payment.succeeded.json")
    section, key = path.split(".") if "." in path else (None, path)
    (body[section] if section else body)[key] = value
    with pytest.raises(NormalizeError) as caught:
        normalize(envelope_factory("standard", body), StandardMappings({(ANY_SOURCE, "payment.succeeded"): PAID}))
    assert caught.value.reason == reason


def test_unmapped_bad_timestamp_falls_back_to_the_envelope(envelope_factory: EnvelopeFactory) -> None:
    body = doc("built/standard_ping.json") | {"timestamp": "soon"}
    assert normalize(envelope_factory("standard", body)).occurred_at == RECEIVED_AT
    provider_time = datetime(2024, 6, 1, 11, 59, 59, tzinfo=UTC)
    assert normalize(envelope_factory("standard", body, provider_created_at=provider_time)).occurred_at == provider_time


def test_type_must_agree_with_the_envelope(envelope_factory: EnvelopeFactory) -> None:
    with pytest.raises(NormalizeError) as caught:
        normalize(envelope_factory("standard", raw("built/standard_ping.json"), event_type="payment.succeeded"))
    assert caught.value.reason == "envelope_mismatch"


def test_body_type_is_used_when_the_envelope_has_none(envelope_factory: EnvelopeFactory) -> None:
    event = normalize(envelope_factory("standard", raw("built/standard_ping.json"), event_type=""))
    assert event.event_type == "endpoint.ping"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("type", "invoice.paid"),
        ("data.invoice.payments.0.total", "1.250"),
        ("data.invoice.payments.1.total", None),
        ("data.invoice.payments.x", None),
        ("data.invoice.payments.-1", None),
        ("data.invoice.number.0", None),
        ("missing.path", None),
    ],
)
def test_value_at(path: str, expected: object) -> None:
    assert value_at(doc("built/standard_invoice.paid.kwd.json"), path) == expected
