"""The payment state machine: one canonical state per payment from out-of-order, duplicated events.

Pure and deterministic, so a replayed event always yields the same state:
- an event is applied at most once per payment (recognised by its event key);
- status follows provider time, with the status rank as tie-breaker; an event
  that is older than the current status changes amounts but never the status
  (it is recorded in `ignored_events`, and the state is flagged `out_of_order_seen`);
- refunds accumulate per refund id (a cumulative total from the provider counts
  too), and the refund status is derived from the totals, so a late partial
  refund that completes the total still makes the payment `refunded`;
- events of kind `other` change nothing.
"""

from __future__ import annotations

from dataclasses import replace

from schemas.lifecycle import STATUS_RANK, Kind, Status
from schemas.records import HistoryEntry, PaymentEvent, PaymentState

__all__ = ["FLAG_CONFLICTING_AMOUNTS", "FLAG_CONFLICTING_CURRENCY", "FLAG_OUT_OF_ORDER", "apply_event"]

FLAG_OUT_OF_ORDER = "out_of_order_seen"
FLAG_CONFLICTING_AMOUNTS = "conflicting_amounts"
FLAG_CONFLICTING_CURRENCY = "conflicting_currency"

_REFUND_STATUSES = {Status.PARTIALLY_REFUNDED.value, Status.REFUNDED.value}
_REFUNDABLE = {Status.SUCCEEDED.value, Status.PARTIALLY_REFUNDED.value}
_PAYMENT_KINDS = {Kind.PAYMENT.value, Kind.AUTHORIZATION.value}


def _rank(status: str) -> int:
    try:
        return STATUS_RANK[Status(status)]
    except ValueError:
        return -1


def _applies(state: PaymentState | None, event: PaymentEvent) -> bool:
    if event.kind == Kind.OTHER.value:
        return False
    return state is None or all(entry.event_key != event.event_key for entry in state.history)


def apply_event(state: PaymentState | None, event: PaymentEvent) -> PaymentState | None:
    """The state after `event`, or None when the event changes nothing (kind other, or a replay)."""
    if not _applies(state, event):
        return None
    if state is None:
        state = PaymentState(
            payment_id=event.payment_id, provider=event.provider, status=Status.CREATED.value,
            created_at=event.occurred_at, updated_at=event.occurred_at, status_at=event.occurred_at,
            last_event_key=event.event_key, version=0, currency=event.currency,
        )
        fresh = True
    else:
        fresh = False
    flags = set(state.flags)
    currency = state.currency
    if event.currency is not None:
        if currency is None:
            currency = event.currency
        elif currency != event.currency:
            flags.add(FLAG_CONFLICTING_CURRENCY)

    amount, captured = state.amount_minor, state.captured_minor
    refunds, refunded, disputed = dict(state.refunds), state.refunded_minor, state.disputed_minor
    if event.amount_minor is not None and event.status is not None:
        if event.kind in _PAYMENT_KINDS:
            if amount is not None and amount != event.amount_minor and event.status != Status.SUCCEEDED.value:
                flags.add(FLAG_CONFLICTING_AMOUNTS)
            if amount is None or _later(event, state):
                amount = event.amount_minor
            if event.status == Status.SUCCEEDED.value:
                captured = max(captured, event.amount_minor)
                if amount is None:
                    amount = event.amount_minor
        elif event.kind == Kind.REFUND.value:
            refund_id = event.related_ids.get("refund")
            if refund_id is not None:
                refunds[refund_id] = event.amount_minor
            refunded = max(refunded, sum(refunds.values()), event.refunded_total_minor or 0)
        elif event.kind == Kind.DISPUTE.value:
            disputed = event.amount_minor

    candidate = event.status
    if event.kind == Kind.REFUND.value and candidate in _REFUND_STATUSES:
        base = captured or amount or 0
        candidate = Status.REFUNDED.value if candidate == Status.REFUNDED.value or (base and refunded >= base) \
            else Status.PARTIALLY_REFUNDED.value

    status, status_at = state.status, state.status_at
    moved = False
    ignored = list(state.ignored_events)
    if candidate is not None:
        if fresh or (event.occurred_at, _rank(candidate)) > (status_at, _rank(status)):
            status, status_at, moved = candidate, event.occurred_at, True
        else:
            ignored.append(event.event_key)
            flags.add(FLAG_OUT_OF_ORDER)
    # totals can complete a refund even when the event that completes them arrived late
    base = captured or amount or 0
    if status in _REFUNDABLE and refunded > 0 and base:
        derived = Status.REFUNDED.value if refunded >= base else Status.PARTIALLY_REFUNDED.value
        if _rank(derived) > _rank(status):
            status, status_at = derived, max(status_at, event.occurred_at)

    entry = HistoryEntry(event_key=event.event_key, event_type=event.event_type, kind=event.kind,
                         status=event.status, amount_minor=event.amount_minor, occurred_at=event.occurred_at,
                         moved_status=moved)
    return replace(
        state,
        status=status,
        status_at=status_at,
        amount_minor=amount,
        captured_minor=captured,
        refunded_minor=refunded,
        disputed_minor=disputed,
        currency=currency,
        refunds=refunds,
        flags=sorted(flags),
        ignored_events=ignored,
        created_at=min(state.created_at, event.occurred_at),
        updated_at=max(state.updated_at, event.occurred_at),
        last_event_key=event.event_key,
        version=state.version + 1,
        history=[*state.history, entry],
        traceparent=event.traceparent,
    )


def _later(event: PaymentEvent, state: PaymentState) -> bool:
    return event.occurred_at >= state.status_at
