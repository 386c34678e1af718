"""Stripe events → PaymentEvent: every mapped type, both API shapes, legacy fixtures, bad data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.clock import from_epoch_s
from streams.normalize import NormalizeError, normalize
from streams.normalize.stripe import MAPPED_TYPES
from tests.streams.normalize.conftest import RECEIVED_AT, EnvelopeFactory
from tests.streams.normalize.support import core, doc, raw

PI0 = "pi_000000000000000000000000"
CH0 = "ch_000000000000000000000000"
RE0 = "re_000000000000000000000000"
CH14 = "ch_00000000000000"


def expect(
    payment_id: str,
    kind: str,
    status: str | None,
    amount: int | None,
    currency: str | None,
    created: int,
    provider_status: str | None,
    related: dict[str, str],
    refunded_total: int | None = None,
) -> dict[str, Any]:
    return {
        "payment_id": payment_id,
        "kind": kind,
        "status": status,
        "amount_minor": amount,
        "currency": currency,
        "occurred_at": from_epoch_s(created),
        "provider_status": provider_status,
        "related_ids": related,
        "refunded_total_minor": refunded_total,
    }


SHARED_CASES = {
    "stripe_payment_intent.created.json": expect(
        PI0, "payment", "created", 2000, "USD", 1648320032, "requires_payment_method", {"payment_intent": PI0}
    ),
    "stripe_payment_intent.processing.json": expect(
        "pi_00000000000000", "payment", "processing", 900, "EUR", 1578499109, "processing",
        {"payment_intent": "pi_00000000000000", "charge": CH14},
    ),
    "stripe_payment_intent.requires_action.json": expect(
        PI0, "payment", "requires_action", 2000, "USD", 1648320004, "requires_action",
        {"payment_intent": PI0, "charge": CH0},
    ),
    "stripe_payment_intent.amount_capturable_updated.json": expect(
        PI0, "authorization", "authorized", 2000, "USD", 1648320022, "requires_capture",
        {"payment_intent": PI0, "charge": CH0},
    ),
    "stripe_payment_intent.succeeded.json": expect(
        PI0, "payment", "succeeded", 2000, "USD", 1648320033, "succeeded", {"payment_intent": PI0, "charge": CH0}
    ),
    "stripe_payment_intent.payment_failed.json": expect(
        PI0, "payment", "failed", 2000, "USD", 1648320029, "requires_payment_method",
        {"payment_intent": PI0, "charge": CH0},
    ),
    "stripe_payment_intent.canceled.json": expect(
        PI0, "payment", "canceled", 2000, "USD", 1648320024, "canceled", {"payment_intent": PI0}
    ),
    "stripe_charge.succeeded.json": expect(
        PI0, "payment", "succeeded", 2000, "USD", 1648320032, "succeeded", {"payment_intent": PI0, "charge": CH0}
    ),
    "stripe_charge.failed.json": expect(
        PI0, "payment", "failed", 2000, "USD", 1648320028, "failed", {"payment_intent": PI0, "charge": CH0}
    ),
    # A charge without a PaymentIntent is its own payment.
    "stripe_charge.captured.json": expect(
        CH0, "payment", "succeeded", 100, "USD", 1648319938, "succeeded", {"charge": CH0}
    ),
    # The cumulative amount_refunded is a total, never one refund's amount: the embedded refund is a part.
    "stripe_charge.refunded.json": expect(
        CH0, "refund", "refunded", 100, "USD", 1648319949, "succeeded", {"charge": CH0},
        refunded_total=100,
    ),
    "stripe_charge.refund.updated.json": expect(
        CH0, "refund", "partially_refunded", 100, "USD", 1648319945, "succeeded", {"charge": CH0, "refund": RE0}
    ),
    "stripe_charge.dispute.created.json": expect(
        CH0, "dispute", "disputed", 100, "USD", 1648319940, "warning_needs_response",
        {"charge": CH0, "dispute": "dp_000000000000000000000000"},
    ),
    "stripe_charge.dispute.funds_withdrawn.json": expect(
        CH14, "dispute", "disputed", 25000, "USD", 1326853478, "needs_response",
        {"charge": CH14, "dispute": "dp_00000000000000"},
    ),
    "stripe_charge.dispute.funds_reinstated.json": expect(
        CH14, "dispute", "dispute_won", 25000, "USD", 1326853478, "needs_response",
        {"charge": CH14, "dispute": "dp_00000000000000"},
    ),
    # Legacy hand-made fixtures: the dispute has no id, so only the charge is related.
    "stripe_charge.dispute.updated.json": expect(
        CH14, "dispute", "disputed", 1000, "USD", 1326853478, "under_review", {"charge": CH14}
    ),
    "stripe_charge.dispute.closed.json": expect(
        CH14, "dispute", "dispute_won", 1000, "USD", 1326853478, "won", {"charge": CH14}
    ),
    "seed_stripe_webhook.json": expect(
        "pi_1OHZK32eZvKYlo2CqP1xqMxH", "payment", "succeeded", 2000, "USD", 1697640000, "succeeded",
        {"payment_intent": "pi_1OHZK32eZvKYlo2CqP1xqMxH", "charge": "ch_1OHZK32eZvKYlo2CqP1xqMxH"},
    ),
}

BUILT_CASES = {
    "stripe_refund.created.json": expect(
        "pi_3PbuiltRefund0001", "refund", "partially_refunded", 500, "USD", 1718000100, "pending",
        {"payment_intent": "pi_3PbuiltRefund0001", "charge": "ch_3PbuiltRefund0001", "refund": "re_3PbuiltRefund0001"},
    ),
    "stripe_refund.updated.json": expect(
        "pi_3PbuiltRefund0001", "refund", "partially_refunded", 500, "USD", 1718000200, "succeeded",
        {"payment_intent": "pi_3PbuiltRefund0001", "charge": "ch_3PbuiltRefund0001", "refund": "re_3PbuiltRefund0001"},
    ),
    # A failed refund moves no money: no status, but the refund's own status is kept.
    "stripe_refund.failed.json": expect(
        "pi_3PbuiltRefund0001", "refund", None, 700, "USD", 1718000300, "failed",
        {"payment_intent": "pi_3PbuiltRefund0001", "charge": "ch_3PbuiltRefund0001", "refund": "re_3PbuiltRefund0002"},
    ),
    "stripe_charge.pending.json": expect(
        "pi_3PbuiltAch000001", "payment", "processing", 2000, "USD", 1718001000, "pending",
        {"payment_intent": "pi_3PbuiltAch000001", "charge": "py_3PbuiltAch000001"},
    ),
    "stripe_charge.expired.json": expect(
        "pi_3PbuiltExpire0001", "payment", "canceled", 2000, "USD", 1718605000, "succeeded",
        {"payment_intent": "pi_3PbuiltExpire0001", "charge": "ch_3PbuiltExpire0001"},
    ),
    "stripe_charge.updated.json": expect(
        "pi_3PbuiltUpdate0001", "payment", "succeeded", 2000, "USD", 1718002000, "succeeded",
        {"payment_intent": "pi_3PbuiltUpdate0001", "charge": "ch_3PbuiltUpdate0001"},
    ),
    "stripe_charge.succeeded.uncaptured.json": expect(
        "pi_3PbuiltUncapt0001", "payment", "authorized", 2000, "USD", 1718003000, "succeeded",
        {"payment_intent": "pi_3PbuiltUncapt0001", "charge": "ch_3PbuiltUncapt0001"},
    ),
    "stripe_charge.refunded.partial.json": expect(
        "pi_3PbuiltPartial001", "refund", "partially_refunded", 500, "USD", 1718004000, "succeeded",
        {"payment_intent": "pi_3PbuiltPartial001", "charge": "ch_3PbuiltPartial001"}, refunded_total=500,
    ),
    "stripe_payment_intent.partially_funded.json": expect(
        "pi_3PbuiltFunded0001", "payment", "requires_action", 10000, "EUR", 1718005000, "requires_action",
        {"payment_intent": "pi_3PbuiltFunded0001"},
    ),
    "stripe_payment_intent.succeeded.latest_charge_jpy.json": expect(
        "pi_3PbuiltJpy0000001", "payment", "succeeded", 5000, "JPY", 1718006000, "succeeded",
        {"payment_intent": "pi_3PbuiltJpy0000001", "charge": "ch_3PbuiltJpy0000001"},
    ),
    "stripe_payment_intent.amount_capturable_updated.kwd.json": expect(
        "pi_3PbuiltKwd0000001", "authorization", "authorized", 12340, "KWD", 1718007000, "requires_capture",
        {"payment_intent": "pi_3PbuiltKwd0000001", "charge": "ch_3PbuiltKwd0000001"},
    ),
    "stripe_charge.dispute.updated.modern.json": expect(
        "pi_3PbuiltDispute001", "dispute", "disputed", 2000, "EUR", 1718010000, "under_review",
        {"payment_intent": "pi_3PbuiltDispute001", "charge": "ch_3PbuiltDispute001", "dispute": "dp_1PbuiltDispute001"},
    ),
    "stripe_charge.dispute.closed.lost.json": expect(
        "pi_3PbuiltDispute001", "dispute", "dispute_lost", 2000, "EUR", 1718020000, "lost",
        {"payment_intent": "pi_3PbuiltDispute001", "charge": "ch_3PbuiltDispute001", "dispute": "dp_1PbuiltDispute001"},
    ),
    "stripe_charge.dispute.closed.warning_closed.json": expect(
        "ch_3PbuiltInquiry001", "dispute", "dispute_won", 2000, "EUR", 1718030000, "warning_closed",
        {"charge": "ch_3PbuiltInquiry001", "dispute": "du_1PbuiltInquiry001"},
    ),
    "stripe_customer.created.json": expect(
        "cus_QbuiltCustomer02", "other", None, None, None, 1718040000, None, {}
    ),
}


@pytest.mark.parametrize(("name", "expected"), SHARED_CASES.items(), ids=list(SHARED_CASES))
def test_shared_payloads(envelope_factory: EnvelopeFactory, name: str, expected: dict[str, Any]) -> None:
    assert core(normalize(envelope_factory("stripe", raw(name)))) == expected


@pytest.mark.parametrize(("name", "expected"), BUILT_CASES.items(), ids=list(BUILT_CASES))
def test_built_payloads(envelope_factory: EnvelopeFactory, name: str, expected: dict[str, Any]) -> None:
    assert core(normalize(envelope_factory("stripe", raw(f"built/{name}")))) == expected


def test_every_documented_type_is_mapped_and_has_a_payload() -> None:
    documented = {
        "payment_intent.created", "payment_intent.processing", "payment_intent.requires_action",
        "payment_intent.amount_capturable_updated", "payment_intent.partially_funded", "payment_intent.succeeded",
        "payment_intent.payment_failed", "payment_intent.canceled", "charge.pending", "charge.succeeded",
        "charge.failed", "charge.captured", "charge.expired", "charge.updated", "charge.refunded",
        "charge.refund.updated", "refund.created", "refund.updated", "refund.failed", "charge.dispute.created",
        "charge.dispute.updated", "charge.dispute.closed", "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }  # providers.md 1.7
    assert documented == MAPPED_TYPES
    tested = {doc(name)["type"] for name in SHARED_CASES} | {doc(f"built/{name}")["type"] for name in BUILT_CASES}
    assert documented <= tested


def test_envelope_fields_are_copied(envelope_factory: EnvelopeFactory) -> None:
    created = datetime(2022, 3, 26, 18, 40, 1, 456000, tzinfo=UTC)
    envelope = envelope_factory(
        "stripe", raw("stripe_payment_intent.succeeded.json"), livemode=True,
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", provider_created_at=created,
    )
    event = normalize(envelope)
    assert event.event_key == "stripe:evt_000000000000000000000000"
    assert event.payment_key == f"stripe:{PI0}"
    assert (event.provider, event.event_type) == ("stripe", "payment_intent.succeeded")
    assert event.envelope_id == envelope.envelope_id
    assert (event.received_at, event.livemode, event.traceparent) == (RECEIVED_AT, True, envelope.traceparent)
    assert type(event.kind) is str and type(event.status) is str  # plain strings, not enum members


def test_thin_event_is_other(envelope_factory: EnvelopeFactory) -> None:
    event = normalize(envelope_factory("stripe", raw("built/stripe_v2.core.event.json")))
    assert core(event) == {
        "payment_id": "mtr_test_61R9IjkbtLNb0wpHy41ISkTMkV1h8Lqc",
        "kind": "other",
        "status": None,
        "amount_minor": None,
        "currency": None,
        "occurred_at": datetime(2024, 9, 17, 6, 20, 52, 246000, tzinfo=UTC),
        "provider_status": None,
        "related_ids": {},
        "refunded_total_minor": None,
    }


def test_thin_event_with_a_mapped_type_name_is_still_other(envelope_factory: EnvelopeFactory) -> None:
    body = doc("built/stripe_v2.core.event.json") | {"type": "payment_intent.succeeded"}
    assert normalize(envelope_factory("stripe", body)).kind == "other"


def test_other_keeps_plainly_stated_money_and_falls_back_to_the_event_id(envelope_factory: EnvelopeFactory) -> None:
    body = doc("built/stripe_customer.created.json")
    body["type"] = "invoice.paid"
    body["data"]["object"] |= {"id": "in_1", "amount": 990, "currency": "eur", "status": "paid"}
    event = normalize(envelope_factory("stripe", body))
    assert (event.payment_id, event.amount_minor, event.currency, event.provider_status) == ("in_1", 990, "EUR", "paid")
    body["data"] = {"object": {"amount": -5, "currency": "eur"}}
    event = normalize(envelope_factory("stripe", body))
    assert (event.payment_id, event.amount_minor, event.currency) == ("evt_built_customer_created", None, None)


def test_latest_charge_and_legacy_charges_list_give_the_same_related_charge(envelope_factory: EnvelopeFactory) -> None:
    legacy = doc("stripe_payment_intent.succeeded.json")
    modern = doc("stripe_payment_intent.succeeded.json")
    del modern["data"]["object"]["charges"]
    modern["data"]["object"]["latest_charge"] = CH0
    modern["api_version"] = "2022-11-15"
    assert core(normalize(envelope_factory("stripe", legacy))) == core(normalize(envelope_factory("stripe", modern)))


def test_payment_intent_succeeded_without_amount_received_uses_amount(envelope_factory: EnvelopeFactory) -> None:
    body = doc("stripe_payment_intent.succeeded.json")
    del body["data"]["object"]["amount_received"]
    body["data"]["object"]["amount"] = 2100
    assert normalize(envelope_factory("stripe", body)).amount_minor == 2100


def test_partial_capture_reports_the_captured_amount(envelope_factory: EnvelopeFactory) -> None:
    body = doc("stripe_charge.captured.json")
    body["data"]["object"] |= {"amount": 1000, "amount_captured": 600}
    assert normalize(envelope_factory("stripe", body)).amount_minor == 600


def test_expanded_payment_intent_reference(envelope_factory: EnvelopeFactory) -> None:
    body = doc("stripe_charge.succeeded.json")
    body["data"]["object"]["payment_intent"] = {"id": "pi_expanded", "object": "payment_intent"}
    event = normalize(envelope_factory("stripe", body))
    assert (event.payment_id, event.related_ids) == ("pi_expanded", {"payment_intent": "pi_expanded", "charge": CH0})


@pytest.mark.parametrize(
    ("refunded_flag", "amount_refunded", "status"),
    [(False, 40, "partially_refunded"), (False, 100, "refunded"), (True, 40, "refunded")],
)
def test_charge_refunded_full_or_partial(
    envelope_factory: EnvelopeFactory, refunded_flag: bool, amount_refunded: int, status: str
) -> None:
    body = doc("stripe_charge.refunded.json")
    body["data"]["object"] |= {"refunded": refunded_flag, "amount_refunded": amount_refunded}
    event = normalize(envelope_factory("stripe", body))
    assert (event.status, event.amount_minor, event.refunded_total_minor) == (status, amount_refunded, amount_refunded)


@pytest.mark.parametrize(
    ("own_status", "status"), [("canceled", None), ("failed", None), ("requires_action", "partially_refunded")]
)
def test_refund_own_status_decides_whether_it_counts(
    envelope_factory: EnvelopeFactory, own_status: str, status: str | None
) -> None:
    body = doc("built/stripe_refund.updated.json")
    body["data"]["object"]["status"] = own_status
    event = normalize(envelope_factory("stripe", body))
    assert (event.kind, event.status, event.provider_status) == ("refund", status, own_status)


@pytest.mark.parametrize(
    ("own_status", "status"), [("won", "dispute_won"), ("prevented", "dispute_won"), ("lost", "dispute_lost")]
)
def test_closed_dispute_outcome(envelope_factory: EnvelopeFactory, own_status: str, status: str) -> None:
    body = doc("built/stripe_charge.dispute.closed.lost.json")
    body["data"]["object"]["status"] = own_status
    assert normalize(envelope_factory("stripe", body)).status == status


def test_event_time_falls_back_to_object_then_envelope(envelope_factory: EnvelopeFactory) -> None:
    body = doc("stripe_payment_intent.requires_action.json")
    del body["created"]
    assert normalize(envelope_factory("stripe", body)).occurred_at == from_epoch_s(1648320001)
    del body["data"]["object"]["created"]
    provider_time = datetime(2024, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)
    event = normalize(envelope_factory("stripe", body, provider_created_at=provider_time))
    assert event.occurred_at == datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert normalize(envelope_factory("stripe", body)).occurred_at == RECEIVED_AT


def test_unmapped_event_with_a_bad_time_falls_back_to_the_envelope(envelope_factory: EnvelopeFactory) -> None:
    body = doc("built/stripe_customer.created.json") | {"created": "yesterday"}
    body["data"]["object"]["created"] = True
    assert normalize(envelope_factory("stripe", body)).occurred_at == RECEIVED_AT


def _mutated(name: str, path: str, value: object) -> dict[str, Any]:
    body = doc(name)
    *parents, last = path.split(".")
    target = body
    for step in parents:
        target = target[step]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return body


_DELETE = object()
PI_CREATED = "stripe_payment_intent.created.json"


@pytest.mark.parametrize(
    ("name", "path", "value", "reason"),
    [
        (PI_CREATED, "data.object.amount", -1, "negative_amount"),
        (PI_CREATED, "data.object.amount", 20.5, "invalid_amount"),
        (PI_CREATED, "data.object.amount", "2000", "invalid_amount"),
        (PI_CREATED, "data.object.amount", True, "invalid_amount"),
        (PI_CREATED, "data.object.amount", 2**63, "amount_out_of_range"),
        (PI_CREATED, "data.object.amount", _DELETE, "missing_amount"),
        (PI_CREATED, "data.object.currency", "xyz", "unknown_currency"),
        (PI_CREATED, "data.object.currency", "us", "invalid_currency"),
        (PI_CREATED, "data.object.currency", _DELETE, "missing_currency"),
        (PI_CREATED, "data.object.id", _DELETE, "missing_payment_id"),
        (PI_CREATED, "data.object.object", "charge", "unexpected_object"),
        (PI_CREATED, "data.object", _DELETE, "missing_field"),
        (PI_CREATED, "data", [], "missing_field"),
        (PI_CREATED, "created", "2022-03-26", "invalid_time"),
        (PI_CREATED, "created", -5, "invalid_time"),
        (PI_CREATED, "created", 10**12, "invalid_time"),
        ("stripe_charge.refund.updated.json", "data.object.charge", None, "missing_payment_id"),
        ("stripe_charge.refund.updated.json", "data.object.id", None, "missing_field"),
        ("stripe_charge.dispute.updated.json", "data.object.charge", _DELETE, "missing_payment_id"),
        ("stripe_charge.dispute.closed.json", "data.object.status", "needs_response", "unexpected_status"),
        ("stripe_charge.refunded.json", "data.object.amount_refunded", _DELETE, "missing_amount"),
        ("stripe_charge.succeeded.json", "data.object.id", "", "missing_payment_id"),
    ],
)
def test_impossible_data_is_a_normalize_error(
    envelope_factory: EnvelopeFactory, name: str, path: str, value: object, reason: str
) -> None:
    with pytest.raises(NormalizeError) as caught:
        normalize(envelope_factory("stripe", _mutated(name, path, value)))
    assert caught.value.reason == reason


@pytest.mark.parametrize(("body", "reason"), [(b"", "invalid_json"), (b"{", "invalid_json"), (b"[]", "not_an_object")])
def test_body_must_be_a_json_object(envelope_factory: EnvelopeFactory, body: bytes, reason: str) -> None:
    with pytest.raises(NormalizeError) as caught:
        normalize(envelope_factory("stripe", body, event_id="evt_1", event_type="charge.succeeded"))
    assert caught.value.reason == reason


@pytest.mark.parametrize(("override", "value"), [("event_type", "charge.failed"), ("event_id", "evt_other")])
def test_body_contradicting_the_envelope_is_refused(
    envelope_factory: EnvelopeFactory, override: str, value: str
) -> None:
    envelope = envelope_factory("stripe", raw("stripe_charge.succeeded.json"), **{override: value})
    with pytest.raises(NormalizeError) as caught:
        normalize(envelope)
    assert caught.value.reason == "envelope_mismatch"


def test_old_shape_charge_refunded_states_each_embedded_refund_as_a_part(envelope_factory: EnvelopeFactory) -> None:
    """Pre-2022-11-15 `charge.refunded` embeds `refunds.data[]`: each refund with its own amount and status."""
    body = doc("stripe_charge.refunded.json")
    charge = body["data"]["object"]
    charge |= {"amount": 2000, "amount_captured": 2000, "amount_refunded": 1500, "refunded": False}
    charge["refunds"]["data"] = [
        {**charge["refunds"]["data"][0], "id": "re_2", "amount": 1000, "status": "succeeded"},
        {**charge["refunds"]["data"][0], "id": "re_1", "amount": 500, "status": "succeeded"},
    ]
    event = normalize(envelope_factory("stripe", body))
    assert event.refunded_total_minor == 1500
    refunds = {(p.id, p.amount_minor, p.status) for p in event.parts if p.kind == "refund"}
    assert refunds == {("re_2", 1000, "succeeded"), ("re_1", 500, "succeeded")}
    assert ("capture", 2000, "succeeded") in {(p.kind, p.amount_minor, p.status) for p in event.parts}
