"""The provider's side of one payment, folded from its events with the state machine's rules.

`streams.state.apply_event` keeps a payment's full state and history (~20 µs per
event); reconciliation needs only the status, the amounts, the currency and two
times, so it folds the same rules into this small record instead (~3 µs). The
rules are those of `apply_event` — status by provider time with the status rank as
tie-break, refunds per refund id or the provider's cumulative total, the refund
status derived from the totals — and a test checks both agree on shuffled stories.
Folding an event a second time changes nothing, so at-least-once input is safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.clock import to_epoch_ms
from schemas.lifecycle import STATUS_RANK, Kind, Status
from schemas.records import PaymentEvent

__all__ = ["CONFIRMED_STATUSES", "ProviderFacts", "fold"]

_RANK = {status.value: rank for status, rank in STATUS_RANK.items()}
_PAYMENT_KINDS = frozenset({Kind.PAYMENT.value, Kind.AUTHORIZATION.value})
_REFUND_STATUSES = frozenset({Status.PARTIALLY_REFUNDED.value, Status.REFUNDED.value})
_REFUNDABLE = frozenset({Status.SUCCEEDED.value, Status.PARTIALLY_REFUNDED.value})
CONFIRMED_STATUSES = frozenset({
    Status.SUCCEEDED.value, Status.PARTIALLY_REFUNDED.value, Status.REFUNDED.value,
    Status.DISPUTED.value, Status.DISPUTE_WON.value, Status.DISPUTE_LOST.value,
})
"""Statuses that prove the provider captured the money (refunds and disputes come after a capture)."""


@dataclass(slots=True)
class ProviderFacts:
    status: str
    status_ms: int
    first_ms: int
    confirmed_ms: int | None = None
    amount_minor: int | None = None
    captured_minor: int = 0
    refunded_minor: int = 0
    disputed_minor: int = 0
    currency: str | None = None
    refunds: dict[str, int] = field(default_factory=dict)

    def pack(self) -> list[Any]:
        return [self.status, self.status_ms, self.first_ms, self.confirmed_ms, self.amount_minor, self.captured_minor,
                self.refunded_minor, self.disputed_minor, self.currency, self.refunds]

    @classmethod
    def unpack(cls, data: list[Any]) -> ProviderFacts:
        return cls(*data)


def _rank(status: str) -> int:
    return _RANK.get(status, -1)


def fold(facts: ProviderFacts | None, event: PaymentEvent) -> ProviderFacts | None:
    """`facts` with `event` applied (updated in place when given); None for an event of kind other."""
    kind = event.kind
    if kind == Kind.OTHER.value:
        return facts
    t = to_epoch_ms(event.occurred_at)
    fresh = facts is None
    if facts is None:
        facts = ProviderFacts(status=Status.CREATED.value, status_ms=t, first_ms=t, currency=event.currency)
    else:
        facts.first_ms = min(facts.first_ms, t)
        if facts.currency is None:
            facts.currency = event.currency
    amount, status = event.amount_minor, event.status
    if amount is not None and status is not None:
        if kind in _PAYMENT_KINDS:
            if facts.amount_minor is None or t >= facts.status_ms:
                facts.amount_minor = amount
            if status == Status.SUCCEEDED.value:
                facts.captured_minor = max(facts.captured_minor, amount)
        elif kind == Kind.REFUND.value:
            refund_id = event.related_ids.get("refund")
            if refund_id is not None:
                facts.refunds[refund_id] = amount
            facts.refunded_minor = max(facts.refunded_minor, sum(facts.refunds.values()),
                                       event.refunded_total_minor or 0)
        elif kind == Kind.DISPUTE.value:
            facts.disputed_minor = amount
    candidate = status
    if kind == Kind.REFUND.value and candidate in _REFUND_STATUSES:
        base = facts.captured_minor or facts.amount_minor or 0
        full = candidate == Status.REFUNDED.value or (base and facts.refunded_minor >= base)
        candidate = Status.REFUNDED.value if full else Status.PARTIALLY_REFUNDED.value
    if candidate is not None and (fresh or (t, _rank(candidate)) > (facts.status_ms, _rank(facts.status))):
        facts.status, facts.status_ms = candidate, t
    base = facts.captured_minor or facts.amount_minor or 0
    if facts.status in _REFUNDABLE and facts.refunded_minor > 0 and base:
        derived = Status.REFUNDED.value if facts.refunded_minor >= base else Status.PARTIALLY_REFUNDED.value
        if _rank(derived) > _rank(facts.status):
            facts.status, facts.status_ms = derived, max(facts.status_ms, t)
    if status in CONFIRMED_STATUSES:
        facts.confirmed_ms = t if facts.confirmed_ms is None else min(facts.confirmed_ms, t)
    return facts
