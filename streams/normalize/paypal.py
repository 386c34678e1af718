"""PayPal event → `PaymentEvent` (mapping of providers.md 2.6-2.8).

The payment is the capture (v2) or sale (v1): that is the id refunds and disputes point back
to (`links[rel=up]`, `sale_id`, `disputed_transactions[].seller_transaction_id`).
`occurred_at` is the resource's `update_time`, else its `create_time`, else the event's
`create_time` (simulator events carry a stale event time; resource times are better).

Decisions where the provider leaves room:
- CHECKOUT.ORDER.APPROVED is status `created` keyed by the order id: the buyer approved, but no
  money is held or moved yet (an authorization, if any, arrives as PAYMENT.AUTHORIZATION.CREATED),
  so "authorized" would overstate it.
- CHECKOUT.ORDER.COMPLETED is keyed by its first capture (so it meets that capture's own
  events), its status taken from that capture; without captures it stays on the order id.
- PAYMENT.CAPTURE.REFUNDED is `partially_refunded` (the state machine decides full vs partial
  from the totals; `total_refunded_amount` is passed on); REVERSED returns the whole capture,
  so `refunded`. A refund whose own status is CANCELLED/FAILED moves no money: status None.
- CUSTOMER.DISPUTE.RESOLVED with outcome NONE or an outcome code not listed gets status None.
- v1 refund resources (PAYMENT.SALE.REFUNDED/REVERSED) state their amount negative
  ("-0.01"): the sign is PayPal's convention there and is dropped. A v1 reversal that names
  no sale (PayPal's own simulator sample does not) has no payment to attach to: dead letter.
- Authorizations are keyed by the authorization id (no capture exists yet).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from schemas.lifecycle import Kind, Status
from schemas.records import PaymentEvent, WebhookEnvelope
from streams.normalize.base import (
    Json,
    NormalizeError,
    build_event,
    check_envelope,
    list_at,
    obj_at,
    resolve_time,
    str_at,
)
from streams.normalize.money import INT64_MAX, currency_code, decimal_to_minor

__all__ = ["MAPPED_TYPES", "normalize_paypal"]

_ORDER_PATH = re.compile(r"/v2/checkout/orders/([^/?#]+)/?(?:[?#]|$)")
_CAPTURE_PATH = re.compile(r"/v2/payments/captures/([^/?#]+)/?(?:[?#]|$)")
_AUTHORIZATION_PATH = re.compile(r"/v2/payments/authorizations/([^/?#]+)/?(?:[?#]|$)")
_SALE_PATH = re.compile(r"/v1/payments/sale/([^/?#]+)/?(?:[?#]|$)")

_CAPTURE_STATUS: dict[str, Status] = {
    "PAYMENT.CAPTURE.COMPLETED": Status.SUCCEEDED,
    "PAYMENT.CAPTURE.PENDING": Status.PROCESSING,
    "PAYMENT.CAPTURE.DECLINED": Status.FAILED,
    "PAYMENT.CAPTURE.DENIED": Status.FAILED,
}
# A capture's own `status` inside a completed order.
_CAPTURE_OWN_STATUS: dict[str, Status] = {
    "PENDING": Status.PROCESSING,
    "DECLINED": Status.FAILED,
    "FAILED": Status.FAILED,
}
_SALE_STATUS: dict[str, Status] = {
    "PAYMENT.SALE.COMPLETED": Status.SUCCEEDED,
    "PAYMENT.SALE.PENDING": Status.PROCESSING,
    "PAYMENT.SALE.DENIED": Status.FAILED,
}
_REFUND_STATUS: dict[str, Status] = {
    "PAYMENT.CAPTURE.REFUNDED": Status.PARTIALLY_REFUNDED,
    "PAYMENT.CAPTURE.REVERSED": Status.REFUNDED,
    "PAYMENT.SALE.REFUNDED": Status.PARTIALLY_REFUNDED,
    "PAYMENT.SALE.REVERSED": Status.REFUNDED,
}
_REFUND_NOT_COUNTED = frozenset({"CANCELLED", "FAILED", "cancelled", "failed"})
_DISPUTE_OUTCOME: dict[str, Status] = {
    "RESOLVED_SELLER_FAVOUR": Status.DISPUTE_WON,
    "CANCELED_BY_BUYER": Status.DISPUTE_WON,
    "DENIED": Status.DISPUTE_WON,
    "RESOLVED_BUYER_FAVOUR": Status.DISPUTE_LOST,
    "RESOLVED_WITH_PAYOUT": Status.DISPUTE_LOST,
    "ACCEPTED": Status.DISPUTE_LOST,
}
_AUTHORIZATION_STATUS: dict[str, Status] = {
    "PAYMENT.AUTHORIZATION.CREATED": Status.AUTHORIZED,
    "PAYMENT.AUTHORIZATION.VOIDED": Status.CANCELED,
}


def _money(resource: Json | None, key: str, *, signed: bool = False) -> tuple[int, str]:
    """v2 `{currency_code, value}` or v1 `{currency, total}`; `signed` drops a v1 refund's minus."""
    money = obj_at(resource, key)
    if money is None:
        raise NormalizeError("missing_amount", key)
    if "currency_code" in money:
        currency, value = currency_code(money.get("currency_code")), money.get("value")
    else:
        currency, value = currency_code(money.get("currency")), money.get("total")
    if signed and isinstance(value, str) and value.startswith("-"):
        value = value[1:]
    if value is None:
        raise NormalizeError("missing_amount", f"{key} has no value")
    return decimal_to_minor(value, currency), currency


def _link_id(resource: Json, pattern: re.Pattern[str], rel: str = "up") -> str | None:
    for link in list_at(resource, "links"):
        if isinstance(link, dict) and link.get("rel") == rel and isinstance(link.get("href"), str):
            match = pattern.search(link["href"])
            if match:
                return match.group(1)
    return None


def _related(**ids: str | None) -> dict[str, str]:
    return {key: value for key, value in ids.items() if value}


def _supplementary(resource: Json, key: str) -> str | None:
    return str_at(obj_at(obj_at(resource, "supplementary_data"), "related_ids"), key)


def _own_status(resource: Json) -> str | None:
    return str_at(resource, "status") or str_at(resource, "state")


def _required_id(resource: Json, key: str = "id") -> str:
    value = str_at(resource, key)
    if value is None:
        raise NormalizeError("missing_payment_id", f"resource.{key}")
    return value


def _capture(env: WebhookEnvelope, etype: str, res: Json, occurred: datetime) -> PaymentEvent:
    capture = _required_id(res)
    amount, currency = _money(res, "amount")
    order = _supplementary(res, "order_id") or _link_id(res, _ORDER_PATH)
    authorization = _supplementary(res, "authorization_id") or _link_id(res, _AUTHORIZATION_PATH)
    return build_event(
        env,
        event_type=etype,
        payment_id=capture,
        kind=Kind.PAYMENT,
        occurred_at=occurred,
        status=_CAPTURE_STATUS[etype],
        amount_minor=amount,
        currency=currency,
        provider_status=_own_status(res),
        related_ids=_related(order=order, authorization=authorization, capture=capture),
    )


def _refund(env: WebhookEnvelope, etype: str, res: Json, occurred: datetime) -> PaymentEvent:
    refund = str_at(res, "id")
    if refund is None:
        raise NormalizeError("missing_field", "resource.id (refund id)")
    v1 = etype.startswith("PAYMENT.SALE.")
    parent = (str_at(res, "sale_id") or _link_id(res, _SALE_PATH, rel="sale")) if v1 else _link_id(res, _CAPTURE_PATH)
    if parent is None:
        raise NormalizeError("missing_payment_id", "refund names no parent capture/sale")
    amount, currency = _money(res, "amount", signed=v1)
    total: int | None = None
    breakdown = obj_at(res, "seller_payable_breakdown")
    if obj_at(breakdown, "total_refunded_amount") is not None:
        total, total_currency = _money(breakdown, "total_refunded_amount")
        if total_currency != currency:
            detail = f"total_refunded_amount in {total_currency}, refund in {currency}"
            raise NormalizeError("currency_mismatch", detail)
    own = _own_status(res)
    return build_event(
        env,
        event_type=etype,
        payment_id=parent,
        kind=Kind.REFUND,
        occurred_at=occurred,
        status=None if own in _REFUND_NOT_COUNTED else _REFUND_STATUS[etype],
        amount_minor=amount,
        currency=currency,
        provider_status=own,
        related_ids=_related(**{"sale" if v1 else "capture": parent}, refund=refund),
        refunded_total_minor=total,
    )


def _dispute(env: WebhookEnvelope, etype: str, res: Json, occurred: datetime) -> PaymentEvent:
    transactions = list_at(res, "disputed_transactions")
    first = transactions[0] if transactions and isinstance(transactions[0], dict) else None
    payment_id = str_at(first, "seller_transaction_id")
    if payment_id is None:
        raise NormalizeError("missing_payment_id", "resource.disputed_transactions[0].seller_transaction_id")
    amount, currency = _money(res, "dispute_amount")
    status: Status | None = Status.DISPUTED
    if etype == "CUSTOMER.DISPUTE.RESOLVED":
        status = _DISPUTE_OUTCOME.get(str_at(obj_at(res, "dispute_outcome"), "outcome_code") or "")
    return build_event(
        env,
        event_type=etype,
        payment_id=payment_id,
        kind=Kind.DISPUTE,
        occurred_at=occurred,
        status=status,
        amount_minor=amount,
        currency=currency,
        provider_status=_own_status(res),
        related_ids=_related(dispute=str_at(res, "dispute_id")),
    )


def _authorization(env: WebhookEnvelope, etype: str, res: Json, occurred: datetime) -> PaymentEvent:
    authorization = _required_id(res)
    amount, currency = _money(res, "amount")
    order = _supplementary(res, "order_id") or _link_id(res, _ORDER_PATH)
    return build_event(
        env,
        event_type=etype,
        payment_id=authorization,
        kind=Kind.AUTHORIZATION,
        occurred_at=occurred,
        status=_AUTHORIZATION_STATUS[etype],
        amount_minor=amount,
        currency=currency,
        provider_status=_own_status(res),
        related_ids=_related(order=order, authorization=authorization),
    )


def _order_total(order: Json) -> tuple[int, str]:
    """Sum of the purchase units; PayPal requires them to share one currency."""
    units = [unit for unit in list_at(order, "purchase_units") if isinstance(unit, dict)]
    if not units:
        raise NormalizeError("missing_amount", "resource.purchase_units")
    total, currency = _money(units[0], "amount")
    for unit in units[1:]:
        amount, unit_currency = _money(unit, "amount")
        if unit_currency != currency:
            raise NormalizeError("currency_mismatch", f"purchase units in {currency} and {unit_currency}")
        total += amount
    if total > INT64_MAX:
        raise NormalizeError("amount_out_of_range", str(total))
    return total, currency


def _first_payment(order: Json, key: str) -> Json | None:
    """First `purchase_units[].payments.<key>[]` entry that has an id."""
    for unit in list_at(order, "purchase_units"):
        for entry in list_at(obj_at(unit if isinstance(unit, dict) else None, "payments"), key):
            if isinstance(entry, dict) and str_at(entry, "id"):
                return entry
    return None


def _order(env: WebhookEnvelope, etype: str, res: Json, occurred: datetime) -> PaymentEvent:
    order = _required_id(res)
    capture = _first_payment(res, "captures") if etype == "CHECKOUT.ORDER.COMPLETED" else None
    authorization = _first_payment(res, "authorizations")
    if capture is not None:
        payment_id = str_at(capture, "id") or order
        amount, currency = _money(capture, "amount")
        status = _CAPTURE_OWN_STATUS.get(str_at(capture, "status") or "", Status.SUCCEEDED)
    else:
        payment_id = order
        amount, currency = _order_total(res)
        status = Status.SUCCEEDED if etype == "CHECKOUT.ORDER.COMPLETED" else Status.CREATED
    return build_event(
        env,
        event_type=etype,
        payment_id=payment_id,
        kind=Kind.PAYMENT,
        occurred_at=occurred,
        status=status,
        amount_minor=amount,
        currency=currency,
        provider_status=_own_status(res),
        related_ids=_related(
            order=order,
            authorization=str_at(authorization, "id"),
            capture=str_at(capture, "id"),
        ),
    )


def _sale(env: WebhookEnvelope, etype: str, res: Json, occurred: datetime) -> PaymentEvent:
    sale = _required_id(res)
    amount, currency = _money(res, "amount")
    return build_event(
        env,
        event_type=etype,
        payment_id=sale,
        kind=Kind.PAYMENT,
        occurred_at=occurred,
        status=_SALE_STATUS[etype],
        amount_minor=amount,
        currency=currency,
        provider_status=_own_status(res),
        related_ids=_related(sale=sale),
    )


_Handler = Callable[[WebhookEnvelope, str, Json, datetime], PaymentEvent]
_HANDLERS: dict[str, _Handler] = {
    **dict.fromkeys(_CAPTURE_STATUS, _capture),
    **dict.fromkeys(_REFUND_STATUS, _refund),
    **dict.fromkeys(("CUSTOMER.DISPUTE.CREATED", "CUSTOMER.DISPUTE.UPDATED", "CUSTOMER.DISPUTE.RESOLVED"), _dispute),
    **dict.fromkeys(_AUTHORIZATION_STATUS, _authorization),
    **dict.fromkeys(("CHECKOUT.ORDER.APPROVED", "CHECKOUT.ORDER.COMPLETED"), _order),
    **dict.fromkeys(_SALE_STATUS, _sale),
}
MAPPED_TYPES = frozenset(_HANDLERS)
"""Every PayPal event type with a payment meaning; anything else is kind "other"."""


def _other(env: WebhookEnvelope, etype: str, res: Json | None, occurred: datetime) -> PaymentEvent:
    payment_id = str_at(res, "id") or str_at(res, "dispute_id") or env.provider_event_id
    amount: int | None = None
    currency: str | None = None
    if obj_at(res, "amount") is not None:
        try:
            amount, currency = _money(res, "amount")
        except NormalizeError:
            amount, currency = None, None
    return build_event(
        env,
        event_type=etype,
        payment_id=payment_id,
        kind=Kind.OTHER,
        occurred_at=occurred,
        amount_minor=amount,
        currency=currency,
        provider_status=_own_status(res) if res is not None else None,
    )


def normalize_paypal(env: WebhookEnvelope, doc: Json) -> PaymentEvent:
    """Map one PayPal webhook event (v2 resources, or v1 sales/authorizations) onto the lifecycle."""
    etype = check_envelope(env, doc, type_key="event_type", id_key="id")
    res = obj_at(doc, "resource")
    handler = _HANDLERS.get(etype)
    times = [res.get("update_time"), res.get("create_time")] if res is not None else []
    occurred = resolve_time([*times, doc.get("create_time")], env, strict=handler is not None)
    if handler is None:
        return _other(env, etype, res, occurred)
    if res is None:
        raise NormalizeError("missing_field", "resource")
    return handler(env, etype, res, occurred)
