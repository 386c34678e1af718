"""The provider's side of one payment for reconciliation: the payment fold's result, kept compactly.

Reconciliation needs the status, the amounts, the currency and two times of each
payment; it gets them from the same pure fold as the payment state
(`streams.fold.fold`), over the same event facts, so the two cannot drift apart.
The facts are stored with the summary (packed as plain lists for the join table);
folding an event a second time changes nothing, so at-least-once input is safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.clock import from_epoch_ms, to_epoch_ms
from schemas.lifecycle import Kind
from schemas.records import HistoryEntry, MoneyPart, PaymentEvent
from streams.fold import CONFIRMED_STATUSES, entry_of
from streams.fold import fold as fold_money

__all__ = ["CONFIRMED_STATUSES", "ProviderFacts", "fold"]


def _pack_entry(entry: HistoryEntry) -> list[Any]:
    return [entry.event_key, entry.event_type, entry.kind, to_epoch_ms(entry.occurred_at), entry.status,
            entry.amount_minor, None if entry.received_at is None else to_epoch_ms(entry.received_at),
            entry.currency, entry.related_ids, entry.refunded_total_minor,
            [[p.kind, p.id, p.amount_minor, p.status] for p in entry.parts]]


def _unpack_entry(data: list[Any]) -> HistoryEntry:
    key, etype, kind, occurred, status, amount, received, currency, related, total, parts = data
    return HistoryEntry(
        event_key=key, event_type=etype, kind=kind, occurred_at=from_epoch_ms(occurred), status=status,
        amount_minor=amount, received_at=None if received is None else from_epoch_ms(received), currency=currency,
        related_ids=related, refunded_total_minor=total,
        parts=[MoneyPart(*p) for p in parts])


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
    entries: list[HistoryEntry] = field(default_factory=list)

    def pack(self) -> list[Any]:
        return [self.status, self.status_ms, self.first_ms, self.confirmed_ms, self.amount_minor, self.captured_minor,
                self.refunded_minor, self.disputed_minor, self.currency, [_pack_entry(e) for e in self.entries]]

    @classmethod
    def unpack(cls, data: list[Any]) -> ProviderFacts:
        status, status_ms, first_ms, confirmed_ms, amount, captured, refunded, disputed, currency, entries = data
        return cls(status, status_ms, first_ms, confirmed_ms, amount, captured, refunded, disputed, currency,
                   [_unpack_entry(e) for e in entries])

    @classmethod
    def of(cls, entries: list[HistoryEntry]) -> ProviderFacts:
        money = fold_money(entries)
        return cls(
            status=money.status, status_ms=to_epoch_ms(money.status_at), first_ms=to_epoch_ms(money.first_at),
            confirmed_ms=None if money.confirmed_at is None else to_epoch_ms(money.confirmed_at),
            amount_minor=money.amount_minor, captured_minor=money.captured_minor,
            refunded_minor=money.refunded_minor, disputed_minor=money.disputed_minor, currency=money.currency,
            entries=entries)


def fold(facts: ProviderFacts | None, event: PaymentEvent) -> ProviderFacts | None:
    """`facts` with `event` folded in (a new value); unchanged for kind other or an event already folded."""
    if event.kind == Kind.OTHER.value:
        return facts
    entries = [] if facts is None else facts.entries
    if any(entry.event_key == event.event_key for entry in entries):
        return facts
    return ProviderFacts.of([*entries, entry_of(event)])
