"""PayPal events → PaymentEvent: v2 captures/refunds/orders/authorizations/disputes and v1 sales."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from streams.normalize import NormalizeError, normalize
from streams.normalize.paypal import MAPPED_TYPES
from tests.streams.normalize.conftest import RECEIVED_AT, EnvelopeFactory
from tests.streams.normalize.support import core, doc, raw


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def expect(
    payment_id: str,
    kind: str,
    status: str | None,
    amount: int | None,
    currency: str | None,
    occurred: str,
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
        "occurred_at": at(occurred),
        "provider_status": provider_status,
        "related_ids": related,
        "refunded_total_minor": refunded_total,
    }


# Captures and authorizations are keyed by their order (the canonical PayPal payment); refunds and
# disputes by the capture they name, which the worker resolves to the order (streams/identity.py).
CASES = {
    "paypal_PAYMENT.CAPTURE.COMPLETED.json": expect(
        "1AB234567A1234567", "payment", "succeeded", 3000, "USD", "2022-08-23T18:29:50Z", "COMPLETED",
        {"order": "1AB234567A1234567", "capture": "12A34567BC123456S"},
    ),
    # Order only in links[rel=up].
    "paypal_PAYMENT.CAPTURE.PENDING.json": expect(
        "8PR65097T8571330M", "payment", "processing", 251, "USD", "2018-08-15T20:02:40Z", "PENDING",
        {"order": "8PR65097T8571330M", "capture": "02T21492PP3782704"},
    ),
    "paypal_PAYMENT.CAPTURE.DECLINED.json": expect(
        "48R416400V564864N", "payment", "failed", 18510, "USD", "2022-12-13T19:13:00Z", "DECLINED",
        {"order": "48R416400V564864N", "authorization": "24B76447NN600461P", "capture": "7U133281TB3277326"},
    ),
    # Parent capture only via links[rel=up]; times with a -07:00 offset become UTC.
    "paypal_PAYMENT.CAPTURE.REFUNDED.json": expect(
        "0JF852973C016714D", "refund", "partially_refunded", 99, "USD", "2018-08-15T19:13:29Z", "COMPLETED",
        {"capture": "0JF852973C016714D", "refund": "1Y107995YT783435V"}, refunded_total=198,
    ),
    "paypal_PAYMENT.CAPTURE.REVERSED.json": expect(
        "4L335234718889942", "refund", "refunded", 251, "USD", "2018-08-15T21:30:10Z", "COMPLETED",
        {"capture": "4L335234718889942", "refund": "09E71677NS257044M"}, refunded_total=251,
    ),
    "paypal_CUSTOMER.DISPUTE.CREATED.json": expect(
        "6T496768GW863311H", "dispute", "disputed", 300, "USD", "2018-06-21T13:35:44Z", "OPEN",
        {"dispute": "PP-000-042-663-135", "capture": "6T496768GW863311H"},
    ),
    "paypal_PAYMENT.SALE.COMPLETED.json": expect(
        "4EU7004268015634R", "payment", "succeeded", 2000, "USD", "2015-05-18T15:44:21Z", "completed",
        {"sale": "4EU7004268015634R"},
    ),
    # v1 refund: negative "-0.01" total is PayPal's sign convention.
    "paypal_PAYMENT.SALE.REFUNDED.json": expect(
        "9T0916710M1105906", "refund", "partially_refunded", 1, "USD", "2014-10-31T15:41:51Z", "completed",
        {"sale": "9T0916710M1105906", "refund": "6YX43824R4443062K"},
    ),
    "seed_paypal_webhook.json": expect(
        "8AJ579492A6413722", "payment", "succeeded", 2000, "USD", "2023-10-18T14:30:00Z", "COMPLETED",
        {"order": "8AJ579492A6413722", "authorization": "8AJ579492A6413722", "capture": "8AJ579492A6413722"},
    ),
    "built/paypal_PAYMENT.AUTHORIZATION.CREATED.json": expect(
        "5O190127TN364715T", "authorization", "authorized", 4990, "EUR", "2024-05-02T10:00:01Z", "CREATED",
        {"order": "5O190127TN364715T", "authorization": "0VF52814937998046"},
    ),
    "built/paypal_PAYMENT.AUTHORIZATION.VOIDED.json": expect(
        "5O190127TN364715T", "authorization", "canceled", 4990, "EUR", "2024-05-03T08:30:00.250Z", "VOIDED",
        {"order": "5O190127TN364715T", "authorization": "0VF52814937998046"},
    ),
    # Approved, not captured: "created" on the order id; two JPY purchase units summed.
    "built/paypal_CHECKOUT.ORDER.APPROVED.jpy.json": expect(
        "9KX37120GC6181234", "payment", "created", 1250, "JPY", "2024-05-04T01:01:30Z", "APPROVED",
        {"order": "9KX37120GC6181234"},
    ),
    "built/paypal_CHECKOUT.ORDER.COMPLETED.json": expect(
        "9KX37120GC6181234", "payment", "succeeded", 1250, "JPY", "2024-05-04T01:04:58Z", "COMPLETED",
        {"order": "9KX37120GC6181234", "capture": "3C679366HH908993F"},
    ),
    "built/paypal_CUSTOMER.DISPUTE.RESOLVED.json": expect(
        "12A34567BC123456S", "dispute", "dispute_lost", 3000, "USD", "2024-05-19T17:45:10.500Z", "RESOLVED",
        {"dispute": "PP-D-21095", "capture": "12A34567BC123456S"},
    ),
    "built/paypal_PAYMENT.CAPTURE.DENIED.json": expect(
        "29U04311TM8373920", "payment", "failed", 1200, "GBP", "2024-05-05T14:00:07Z", "DECLINED",
        {"order": "29U04311TM8373920", "capture": "7NW873794T343360M"},
    ),
    # Unmapped; the event create_time "2018-19-12…" is invalid but not needed.
    "built/paypal_BILLING.SUBSCRIPTION.CREATED.json": expect(
        "I-BW452GLLEP1G", "other", None, None, None, "2018-12-10T21:20:49Z", "APPROVAL_PENDING", {}
    ),
}


@pytest.mark.parametrize(("name", "expected"), CASES.items(), ids=list(CASES))
def test_payloads(envelope_factory: EnvelopeFactory, name: str, expected: dict[str, Any]) -> None:
    event = normalize(envelope_factory("paypal", raw(name)))
    assert core(event) == expected
    assert event.event_key == f"paypal:{doc(name)['id']}"


def test_every_mapped_type_has_a_payload_or_a_variant_test() -> None:
    covered = {doc(name)["event_type"] for name in CASES} | {
        "CUSTOMER.DISPUTE.UPDATED",  # test_dispute_updated
        "PAYMENT.SALE.PENDING",  # test_v1_sale_states
        "PAYMENT.SALE.DENIED",
        "PAYMENT.SALE.REVERSED",  # test_v1_reversal_*
    }
    assert covered >= MAPPED_TYPES


def test_v1_reversal_without_a_sale_is_a_dead_letter(envelope_factory: EnvelopeFactory) -> None:
    """PayPal's own simulator sample names no parent sale: nothing to attach the money to."""
    with pytest.raises(NormalizeError) as caught:
        normalize(envelope_factory("paypal", raw("paypal_PAYMENT.SALE.REVERSED.json")))
    assert caught.value.reason == "missing_payment_id"


def test_v1_reversal_with_a_sale_link(envelope_factory: EnvelopeFactory) -> None:
    body = doc("paypal_PAYMENT.SALE.REVERSED.json")
    sale_link = {"href": "https://api.paypal.com/v1/payments/sale/5SA006225W236580K", "rel": "sale", "method": "GET"}
    body["resource"]["links"].append(sale_link)
    assert core(normalize(envelope_factory("paypal", body))) == expect(
        "5SA006225W236580K", "refund", "refunded", 49, "USD", "2014-10-23T00:19:12Z", "completed",
        {"sale": "5SA006225W236580K", "refund": "77689802DL785834G"},
    )


@pytest.mark.parametrize(
    ("event_type", "status"), [("PAYMENT.SALE.PENDING", "processing"), ("PAYMENT.SALE.DENIED", "failed")]
)
def test_v1_sale_states(envelope_factory: EnvelopeFactory, event_type: str, status: str) -> None:
    body = doc("paypal_PAYMENT.SALE.COMPLETED.json") | {"event_type": event_type}
    event = normalize(envelope_factory("paypal", body))
    assert (event.payment_id, event.kind, event.status) == ("4EU7004268015634R", "payment", status)


def test_v1_authorization(envelope_factory: EnvelopeFactory) -> None:
    """v1 shape (`amount.total`, `state`), as in PayPal-node-SDK's webhook sample."""
    body = {
        "id": "WH-7285486103862532R-5WM67492J86746059",
        "create_time": "2015-06-23T15:26:30Z",
        "resource_type": "authorization",
        "event_type": "PAYMENT.AUTHORIZATION.CREATED",
        "resource": {
            "id": "6F961703H62685926",
            "create_time": "2015-06-23T15:24:25Z",
            "update_time": "2015-06-23T15:25:23Z",
            "amount": {"total": "6.00", "currency": "USD", "details": {"subtotal": "6.00"}},
            "state": "authorized",
            "parent_payment": "PAY-2XG59747K7884911VKWEXUKI",
        },
    }
    assert core(normalize(envelope_factory("paypal", body))) == expect(
        "6F961703H62685926", "authorization", "authorized", 600, "USD", "2015-06-23T15:25:23Z", "authorized",
        {"authorization": "6F961703H62685926"},
    )


def test_dispute_updated(envelope_factory: EnvelopeFactory) -> None:
    body = doc("paypal_CUSTOMER.DISPUTE.CREATED.json") | {"event_type": "CUSTOMER.DISPUTE.UPDATED"}
    body["resource"]["status"] = "WAITING_FOR_SELLER_RESPONSE"
    event = normalize(envelope_factory("paypal", body))
    assert (event.kind, event.status, event.provider_status) == ("dispute", "disputed", "WAITING_FOR_SELLER_RESPONSE")


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("RESOLVED_SELLER_FAVOUR", "dispute_won"),
        ("CANCELED_BY_BUYER", "dispute_won"),
        ("DENIED", "dispute_won"),
        ("RESOLVED_WITH_PAYOUT", "dispute_won"),  # PayPal paid the buyer itself: the merchant kept the money
        ("RESOLVED_BUYER_FAVOUR", "dispute_lost"),
        ("ACCEPTED", "dispute_lost"),
        ("NONE", None),
        ("SOMETHING_NEW", None),
        (None, None),
    ],
)
def test_dispute_outcomes(envelope_factory: EnvelopeFactory, outcome: str | None, status: str | None) -> None:
    body = doc("built/paypal_CUSTOMER.DISPUTE.RESOLVED.json")
    body["resource"]["dispute_outcome"] = {"outcome_code": outcome}
    event = normalize(envelope_factory("paypal", body))
    assert (event.kind, event.status) == ("dispute", status)


@pytest.mark.parametrize(
    ("own_status", "status"), [("CANCELLED", None), ("FAILED", None), ("PENDING", "partially_refunded")]
)
def test_refund_own_status(envelope_factory: EnvelopeFactory, own_status: str, status: str | None) -> None:
    body = doc("paypal_PAYMENT.CAPTURE.REFUNDED.json")
    body["resource"]["status"] = own_status
    event = normalize(envelope_factory("paypal", body))
    assert (event.kind, event.status, event.provider_status) == ("refund", status, own_status)


@pytest.mark.parametrize(
    ("currency", "value", "minor"),
    [("USD", "30.00", 3000), ("USD", "30", 3000), ("USD", "30.5", 3050), ("JPY", "1000", 1000), ("HUF", "1000", 100000),
     ("TWD", "1000", 100000), ("KWD", "1.250", 1250), ("EUR", "0.01", 1)],
)
def test_capture_amounts(envelope_factory: EnvelopeFactory, currency: str, value: str, minor: int) -> None:
    body = doc("paypal_PAYMENT.CAPTURE.COMPLETED.json")
    body["resource"]["amount"] = {"currency_code": currency, "value": value}
    event = normalize(envelope_factory("paypal", body))
    assert (event.amount_minor, event.currency) == (minor, currency)


def test_order_completed_without_captures_stays_on_the_order(envelope_factory: EnvelopeFactory) -> None:
    body = doc("built/paypal_CHECKOUT.ORDER.COMPLETED.json")
    del body["resource"]["purchase_units"][0]["payments"]
    event = normalize(envelope_factory("paypal", body))
    assert (event.payment_id, event.status, event.amount_minor, event.related_ids) == (
        "9KX37120GC6181234", "succeeded", 1250, {"order": "9KX37120GC6181234"}
    )


def test_order_completed_takes_the_capture_status(envelope_factory: EnvelopeFactory) -> None:
    body = doc("built/paypal_CHECKOUT.ORDER.COMPLETED.json")
    body["resource"]["purchase_units"][0]["payments"]["captures"][0]["status"] = "PENDING"
    body["resource"]["purchase_units"][0]["payments"]["authorizations"] = [{"id": "1AU08846PB6112207"}]
    event = normalize(envelope_factory("paypal", body))
    assert event.status == "processing"
    assert event.related_ids == {
        "order": "9KX37120GC6181234", "authorization": "1AU08846PB6112207", "capture": "3C679366HH908993F"
    }


def test_resource_without_times_uses_the_event_time_then_the_envelope(envelope_factory: EnvelopeFactory) -> None:
    body = doc("paypal_PAYMENT.CAPTURE.COMPLETED.json")
    del body["resource"]["update_time"], body["resource"]["create_time"]
    assert normalize(envelope_factory("paypal", body)).occurred_at == at("2019-02-14T21:50:07.940Z")
    del body["create_time"]
    assert normalize(envelope_factory("paypal", body)).occurred_at == RECEIVED_AT


def _mutated(name: str, path: str, value: object) -> dict[str, Any]:
    body = doc(name)
    *parents, last = path.split(".")
    target: Any = body
    for step in parents:
        target = target[int(step)] if isinstance(target, list) else target[step]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return body


_DELETE = object()
COMPLETED = "paypal_PAYMENT.CAPTURE.COMPLETED.json"
REFUNDED = "paypal_PAYMENT.CAPTURE.REFUNDED.json"
APPROVED = "built/paypal_CHECKOUT.ORDER.APPROVED.jpy.json"


@pytest.mark.parametrize(
    ("name", "path", "value", "reason"),
    [
        (COMPLETED, "resource.amount.value", "30.001", "too_many_decimals"),
        (COMPLETED, "resource.amount.value", "-30.00", "negative_amount"),
        (COMPLETED, "resource.amount.value", "30,00", "invalid_amount"),
        (COMPLETED, "resource.amount.value", "3e1", "invalid_amount"),
        (COMPLETED, "resource.amount.value", 30, "invalid_amount"),
        (COMPLETED, "resource.amount.value", 30.0, "invalid_amount"),
        (COMPLETED, "resource.amount.value", _DELETE, "missing_amount"),
        (COMPLETED, "resource.amount", _DELETE, "missing_amount"),
        (COMPLETED, "resource.amount.currency_code", "ZZZ", "unknown_currency"),
        (COMPLETED, "resource.amount.currency_code", "US$", "invalid_currency"),
        (COMPLETED, "resource.id", _DELETE, "missing_payment_id"),
        (COMPLETED, "resource.update_time", "2022-08-23 18:29", "invalid_time"),
        (COMPLETED, "resource.update_time", "2022-08-23T18:29:50", "invalid_time"),
        (COMPLETED, "resource", "capture", "missing_field"),
        (REFUNDED, "resource.links.1.rel", "parent", "missing_payment_id"),
        (REFUNDED, "resource.id", _DELETE, "missing_field"),
        (REFUNDED, "resource.seller_payable_breakdown.total_refunded_amount.currency_code", "EUR", "currency_mismatch"),
        (APPROVED, "resource.purchase_units.1.amount.currency_code", "USD", "currency_mismatch"),
        (APPROVED, "resource.purchase_units.0.amount.value", "1000.5", "too_many_decimals"),
        (APPROVED, "resource.purchase_units", [], "missing_amount"),
        ("paypal_CUSTOMER.DISPUTE.CREATED.json", "resource.disputed_transactions", [], "missing_payment_id"),
        ("paypal_PAYMENT.SALE.COMPLETED.json", "resource.amount.total", "-20.00", "negative_amount"),
    ],
)
def test_impossible_data_is_a_normalize_error(
    envelope_factory: EnvelopeFactory, name: str, path: str, value: object, reason: str
) -> None:
    with pytest.raises(NormalizeError) as caught:
        normalize(envelope_factory("paypal", _mutated(name, path, value)))
    assert caught.value.reason == reason


def test_unmapped_event_keeps_a_plain_amount(envelope_factory: EnvelopeFactory) -> None:
    body = doc(COMPLETED) | {"event_type": "PAYMENT.CAPTURE.SOMETHING_NEW"}
    event = normalize(envelope_factory("paypal", body))
    assert (event.kind, event.payment_id, event.status, event.amount_minor, event.currency) == (
        "other", "12A34567BC123456S", None, 3000, "USD"
    )
    body["resource"] = None
    event = normalize(envelope_factory("paypal", body))
    assert (event.payment_id, event.amount_minor) == (body["id"], None)
    assert event.occurred_at == at("2019-02-14T21:50:07.940Z")
