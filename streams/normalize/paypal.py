"""PayPal event → `PaymentEvent` (mapping of providers.md 2.6-2.8).

The payment is the order (Orders v2): captures and authorizations name it
(`supplementary_data.related_ids.order_id`, `links[rel=up]`) and are keyed by it. An
authorization that names no order is its own payment, and so is a v1 sale; a capture that names
only its authorization (older deliveries: `links[rel=up]`, no `supplementary_data`) is resolved by
the worker to the authorization's payment (`streams/identity.py`).
Refunds (`links[rel=up]` → capture) and disputes (`seller_transaction_id`) name only the
capture or sale: they are keyed by it and the worker resolves it through the capture → order
link (`streams/identity.py`). `occurred_at` is the resource's `update_time`, else its
`create_time`, else the event's `create_time` (simulator events carry a stale event time).

Money travels as parts (`MoneyPart`), folded by `streams/fold.py`: a capture part per capture
(from capture events and an order's `payments.captures[]`), an authorization part per
authorization (open, captured by a final capture, voided), a refund part per refund with its own
status (`total_refunded_amount`, per capture, is a total), a dispute part per dispute.

Decisions where the provider leaves room:
- CHECKOUT.ORDER.APPROVED is status `created`: the buyer approved, but no money is held or
  moved yet, so "authorized" would overstate it.
- CHECKOUT.ORDER.COMPLETED with intent AUTHORIZE and only `authorizations[]` is `authorized`
  (kind authorization), never `succeeded`: no money was captured.
- PAYMENT.CAPTURE.REVERSED (and a v1 sale's) is PayPal taking the money back, for a chargeback
  or a dispute it decided: a `reversal` part, counted as refunded; the fold does not count a
  dispute's money again where a reversal of the same capture already took it (a dispute event
  names its capture, or v1 sale, as `related_ids["capture"]` for that).
- A dispute resolved against the merchant counts `dispute_outcome.amount_refunded` (what was
  refunded in the end) when PayPal states it, else `dispute_amount`. RESOLVED_WITH_PAYOUT is a
  win for the merchant: PayPal paid the buyer itself.
- CUSTOMER.DISPUTE.RESOLVED with outcome NONE or an outcome code not listed (PayPal documents no
  meaning for NONE) is a `closed` dispute part: the case is over, so nothing stays at stake, and the
  event states no payment status. If PayPal took money for it, its PAYMENT.CAPTURE.REVERSED says so
  and counts as refunded; if the merchant kept it, nothing was taken. Either way the money is right.
- v1 refund resources (PAYMENT.SALE.REFUNDED/REVERSED) state their amount negative
  ("-0.01"): the sign is PayPal's convention there and is dropped. A v1 reversal that names
  no sale (PayPal's own simulator sample does not) has no payment to attach to: dead letter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from schemas.lifecycle import Kind, Status
from schemas.records import MoneyPart, PaymentEvent, WebhookEnvelope
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
    "RESOLVED_WITH_PAYOUT": Status.DISPUTE_WON,
    "DENIED": Status.DISPUTE_WON,
    "RESOLVED_BUYER_FAVOUR": Status.DISPUTE_LOST,
    "ACCEPTED": Status.DISPUTE_LOST,
}
_CAPTURE_PART = {"COMPLETED": "succeeded", "PENDING": "pending", "DECLINED": "failed", "DENIED": "failed",
                 "FAILED": "failed", "REFUNDED": "succeeded", "PARTIALLY_REFUNDED": "succeeded",
                 "completed": "succeeded", "pending": "pending", "denied": "failed", "refunded": "succeeded",
                 "partially_refunded": "succeeded"}
_REFUND_PART = {"COMPLETED": "succeeded", "PENDING": "pending", "FAILED": "failed", "CANCELLED": "canceled",
                "completed": "succeeded", "pending": "pending", "failed": "failed", "cancelled": "canceled"}
_AUTHORIZATION_PART = {"CREATED": "open", "PENDING": "open", "PARTIALLY_CAPTURED": "open", "CAPTURED": "captured",
                       "VOIDED": "voided", "EXPIRED": "voided", "DENIED": "voided", "authorized": "open",
                       "captured": "captured", "voided": "voided", "expired": "voided"}
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
    status = _CAPTURE_STATUS[etype]
    parts = [MoneyPart("capture", capture, amount, _CAPTURE_PART.get(_own_status(res) or "", {
        Status.SUCCEEDED: "succeeded", Status.PROCESSING: "pending"}.get(status, "failed")))]
    if authorization is not None and res.get("final_capture") is True and status is Status.SUCCEEDED:
        parts.append(MoneyPart("authorization", authorization, amount, "captured"))
    return build_event(
        env,
        event_type=etype,
        payment_id=order or capture,
        kind=Kind.PAYMENT,
        occurred_at=occurred,
        status=status,
        amount_minor=amount,
        currency=currency,
        provider_status=_own_status(res),
        related_ids=_related(order=order, authorization=authorization, capture=capture),
        parts=parts,
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
    part_status = _REFUND_PART.get(own or "", "succeeded")
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
        parts=[MoneyPart("reversal" if etype.endswith(".REVERSED") else "refund", refund, amount, part_status)],
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
        outcome_doc = obj_at(res, "dispute_outcome")
        status = _DISPUTE_OUTCOME.get(str_at(outcome_doc, "outcome_code") or "")
        if status is Status.DISPUTE_LOST and obj_at(outcome_doc, "amount_refunded") is not None:
            amount, refunded_currency = _money(outcome_doc, "amount_refunded")
            if refunded_currency != currency:
                raise NormalizeError("currency_mismatch",
                                     f"amount_refunded in {refunded_currency}, dispute in {currency}")
    dispute = str_at(res, "dispute_id")
    outcome = {Status.DISPUTED: "open", Status.DISPUTE_WON: "won", Status.DISPUTE_LOST: "lost"}.get(status) \
        if status is not None else "closed"
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
        related_ids=_related(dispute=dispute, capture=payment_id),  # the capture (or v1 sale) it disputes
        parts=[MoneyPart("dispute", dispute or "", amount, outcome)] if outcome is not None else [],
    )


def _authorization(env: WebhookEnvelope, etype: str, res: Json, occurred: datetime) -> PaymentEvent:
    authorization = _required_id(res)
    amount, currency = _money(res, "amount")
    order = _supplementary(res, "order_id") or _link_id(res, _ORDER_PATH)
    status = _AUTHORIZATION_STATUS[etype]
    part = _AUTHORIZATION_PART.get(_own_status(res) or "", "voided" if status is Status.CANCELED else "open")
    return build_event(
        env,
        event_type=etype,
        payment_id=order or authorization,
        kind=Kind.AUTHORIZATION,
        occurred_at=occurred,
        status=status,
        amount_minor=amount,
        currency=currency,
        provider_status=_own_status(res),
        related_ids=_related(order=order, authorization=authorization),
        parts=[MoneyPart("authorization", authorization, amount, part)],
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


def _payments(order: Json, key: str) -> list[Json]:
    """Every `purchase_units[].payments.<key>[]` entry that has an id."""
    found: list[Json] = []
    for unit in list_at(order, "purchase_units"):
        for entry in list_at(obj_at(unit if isinstance(unit, dict) else None, "payments"), key):
            if isinstance(entry, dict) and str_at(entry, "id"):
                found.append(entry)
    return found


def _order(env: WebhookEnvelope, etype: str, res: Json, occurred: datetime) -> PaymentEvent:
    order = _required_id(res)
    completed = etype == "CHECKOUT.ORDER.COMPLETED"
    captures = _payments(res, "captures") if completed else []
    authorizations = _payments(res, "authorizations") if completed else []
    amount, currency = _order_total(res)
    parts: list[MoneyPart] = []
    for capture in captures:
        parts.append(MoneyPart("capture", str_at(capture, "id") or "", _money(capture, "amount")[0],
                               _CAPTURE_PART.get(str_at(capture, "status") or "", "succeeded")))
    for authorization in authorizations:  # an entry without its amount holds the order's
        held = _money(authorization, "amount")[0] if obj_at(authorization, "amount") is not None else amount
        parts.append(MoneyPart("authorization", str_at(authorization, "id") or "", held,
                               _AUTHORIZATION_PART.get(str_at(authorization, "status") or "", "open")))
    kind = Kind.PAYMENT
    if captures:
        states = {p.status for p in parts if p.kind == "capture"}
        status = Status.SUCCEEDED if "succeeded" in states else Status.PROCESSING if "pending" in states \
            else Status.FAILED
    elif authorizations or (completed and str_at(res, "intent") == "AUTHORIZE"):
        kind, status = Kind.AUTHORIZATION, Status.AUTHORIZED
    else:
        status = Status.SUCCEEDED if completed else Status.CREATED
    first_capture = captures[0] if captures else None
    first_authorization = authorizations[0] if authorizations else None
    return build_event(
        env,
        event_type=etype,
        payment_id=order,
        kind=kind,
        occurred_at=occurred,
        status=status,
        amount_minor=amount,
        currency=currency,
        provider_status=_own_status(res),
        related_ids=_related(
            order=order,
            authorization=str_at(first_authorization, "id"),
            capture=str_at(first_capture, "id"),
        ),
        parts=parts,
    )


def _sale(env: WebhookEnvelope, etype: str, res: Json, occurred: datetime) -> PaymentEvent:
    sale = _required_id(res)
    amount, currency = _money(res, "amount")
    status = _SALE_STATUS[etype]
    part = {Status.SUCCEEDED: "succeeded", Status.PROCESSING: "pending"}.get(status, "failed")
    return build_event(
        env,
        event_type=etype,
        payment_id=sale,
        kind=Kind.PAYMENT,
        occurred_at=occurred,
        status=status,
        amount_minor=amount,
        currency=currency,
        provider_status=_own_status(res),
        related_ids=_related(sale=sale),
        parts=[MoneyPart("capture", sale, amount, part)],
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
