"""The payment-level join, as pure functions: which window(s) a payment belongs to and with what.

One `JoinState` per `<provider>:<payment_id>` holds the merchant's expectation
(`LedgerFacts`), the provider's facts (`facts.ProviderFacts`: the state machine's
rules, without its history) and the payment's `Placement` in each window it
currently contributes to. Everything here is a deterministic function of the
records applied, so a replay computes the same placements again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.clock import to_epoch_ms
from schemas.lifecycle import Status
from schemas.records import LedgerEntry, PaymentEvent
from streams.reconcile.facts import CONFIRMED_STATUSES, ProviderFacts, fold

__all__ = [
    "CONFIRMED_STATUSES",
    "DEFAULT_RETENTION_S",
    "Contribution",
    "JoinState",
    "LedgerFacts",
    "Placement",
    "WindowRef",
    "WindowSpec",
    "fold_event",
    "fold_ledger",
    "ledger_problem",
    "settle",
    "targets",
]

WindowRef = tuple[str, int]
"""(currency, window_start_ms) — the provider is the payment's own."""

_MONEY_AT_RISK = frozenset({Status.DISPUTED.value, Status.DISPUTE_LOST.value})


DEFAULT_RETENTION_S = 180 * 86_400
"""180 days: about the longest a card network or PayPal lets a refund or dispute follow a payment."""


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Tumbling event-time windows aligned to the epoch, with a grace period for late records."""

    size_ms: int
    grace_ms: int
    retention_ms: int = DEFAULT_RETENTION_S * 1000
    """How long after it closes a window still takes corrections; then its state is deleted (`expiry.py`)."""

    @classmethod
    def from_seconds(cls, size_s: int, grace_s: int, retention_s: int = DEFAULT_RETENTION_S) -> WindowSpec:
        return cls(size_s * 1000, grace_s * 1000, retention_s * 1000)

    def start(self, t_ms: int) -> int:
        return t_ms - t_ms % self.size_ms

    def closes_at(self, start_ms: int) -> int:
        """Event time at which the window closes: its end plus grace."""
        return start_ms + self.size_ms + self.grace_ms

    def final_at(self, start_ms: int) -> int:
        """Event time from which the window is final: no correction is taken and its state may go."""
        return self.closes_at(start_ms) + self.retention_ms

    def on_time(self, start_ms: int, clock_ms: int | None) -> bool:
        return clock_ms is None or clock_ms < self.closes_at(start_ms)


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one payment adds to one window; money in minor units of the window's currency.

    `merchant_reference` (the ledger's) rides along for the ops drill-down; it is not part of
    the comparison, so a ledger correction that changes only the reference moves no window
    and counts no late event.
    """

    expected_minor: int | None = None
    confirmed_minor: int | None = None
    status: str | None = None
    amount_minor: int = 0
    captured_minor: int = 0
    refunded_minor: int = 0
    disputed_minor: int = 0
    merchant_reference: str | None = field(default=None, compare=False)

    def pack(self) -> list[Any]:
        packed = [self.expected_minor, self.confirmed_minor, self.status, self.amount_minor, self.captured_minor,
                  self.refunded_minor, self.disputed_minor]
        if self.merchant_reference is not None:  # placements stored before it existed have seven fields
            packed.append(self.merchant_reference)
        return packed

    @classmethod
    def unpack(cls, data: list[Any]) -> Contribution:
        return cls(*data)


def _pack_opt(value: Contribution | None) -> list[Any] | None:
    return None if value is None else value.pack()


def _unpack_opt(value: list[Any] | None) -> Contribution | None:
    return None if value is None else Contribution.unpack(value)


@dataclass(frozen=True, slots=True)
class Placement:
    """A payment in one window: what the first result counts (`ontime`), what is true now (`current`).

    `ontime` only changes while the window is open in event time; a later change
    updates `current` and counts one late event, which the window's correction shows.
    """

    ontime: Contribution | None = None
    current: Contribution | None = None
    late: int = 0

    @property
    def empty(self) -> bool:
        return self.ontime is None and self.current is None and self.late == 0

    def pack(self) -> list[Any]:
        return [_pack_opt(self.ontime), _pack_opt(self.current), self.late]

    @classmethod
    def unpack(cls, data: list[Any]) -> Placement:
        return cls(_unpack_opt(data[0]), _unpack_opt(data[1]), data[2])


@dataclass(frozen=True, slots=True)
class LedgerFacts:
    amount_minor: int
    currency: str
    expected_ms: int
    merchant_reference: str | None = None


@dataclass(slots=True)
class JoinState:
    """Everything reconciliation keeps about one payment."""

    ledger: LedgerFacts | None = None
    payment: ProviderFacts | None = None
    placements: dict[WindowRef, Placement] = field(default_factory=dict)

    def pack(self) -> list[Any]:
        ledger = None if self.ledger is None else [self.ledger.amount_minor, self.ledger.currency,
                                                   self.ledger.expected_ms, self.ledger.merchant_reference]
        return [ledger, None if self.payment is None else self.payment.pack(),
                [[cur, start, p.pack()] for (cur, start), p in self.placements.items()]]

    @classmethod
    def unpack(cls, data: list[Any]) -> JoinState:
        ledger, payment, placements = data
        return cls(
            ledger=None if ledger is None else LedgerFacts(*ledger),
            payment=None if payment is None else ProviderFacts.unpack(payment),
            placements={(cur, start): Placement.unpack(p) for cur, start, p in placements},
        )


# Folding records into the join state ---------------------------------------------------------------

def fold_event(state: JoinState, event: PaymentEvent) -> bool:
    """Apply a provider event (see `facts.fold`); False when it cannot matter (kind other)."""
    payment = fold(state.payment, event)
    if payment is None:
        return False
    state.payment = payment
    return True


def fold_ledger(state: JoinState, entry: LedgerEntry) -> None:
    """The latest ledger record for a payment replaces an earlier one (a corrected import)."""
    state.ledger = LedgerFacts(entry.amount_minor, entry.currency, to_epoch_ms(entry.expected_at),
                               entry.merchant_reference or None)


def ledger_problem(entry: LedgerEntry, key: bytes | None) -> str | None:
    """Why a ledger record cannot be joined, or None; the import command checks the same and more."""
    if key is not None and key != entry.payment_key.encode():
        return "key is not <provider>:<payment_id> of the value"
    if entry.amount_minor < 0:
        return "negative amount"
    if len(entry.currency) != 3 or not entry.currency.isascii() or not entry.currency.isupper():
        return "currency is not upper-case ISO 4217"
    return None


# Where a payment belongs ---------------------------------------------------------------------------------

def provider_contribution(payment: ProviderFacts, expected_minor: int | None = None,
                          merchant_reference: str | None = None) -> Contribution:
    """The provider's side: status, amounts, and the confirmed amount once the money was captured."""
    confirmed = None
    if payment.status in CONFIRMED_STATUSES:
        confirmed = payment.captured_minor or payment.amount_minor or 0
    disputed = payment.disputed_minor if payment.status in _MONEY_AT_RISK else 0
    return Contribution(expected_minor, confirmed, payment.status, payment.amount_minor or 0, payment.captured_minor,
                        payment.refunded_minor, disputed, merchant_reference)


def targets(state: JoinState, spec: WindowSpec) -> dict[WindowRef, Contribution]:
    """The windows the payment belongs to now and what it adds to each.

    With a ledger entry: the window of `expected_at`, in the ledger's currency, holding
    both sides. A provider currency different from the ledger's cannot be compared:
    the ledger side stays (missing) and the provider side goes to its own currency's
    window (unexpected). Without a ledger entry: the window of the provider's
    confirmation time, or of its first event while unconfirmed.
    """
    out: dict[WindowRef, Contribution] = {}
    payment = state.payment
    ledger = state.ledger
    if ledger is not None:
        ref = (ledger.currency, spec.start(ledger.expected_ms))
        if payment is not None and payment.currency in (None, ledger.currency):
            out[ref] = provider_contribution(payment, ledger.amount_minor, ledger.merchant_reference)
            return out
        out[ref] = Contribution(expected_minor=ledger.amount_minor, merchant_reference=ledger.merchant_reference)
    if payment is not None and payment.currency is not None:
        confirmed = payment.status in CONFIRMED_STATUSES and payment.confirmed_ms is not None
        anchor = payment.confirmed_ms if confirmed and payment.confirmed_ms is not None else payment.first_ms
        out[(payment.currency, spec.start(anchor))] = provider_contribution(payment)
    return out


def settle(state: JoinState, wanted: dict[WindowRef, Contribution], clock_ms: int | None,
           spec: WindowSpec) -> list[WindowRef]:
    """Move the payment's placements to `wanted`; returns the windows whose placement changed.

    A change to a window still open at `clock_ms` (the partition's event time,
    including the record that caused it) rewrites both views; a change to a closed
    window only rewrites `current` and counts one late event there.
    """
    changed: list[WindowRef] = []
    placements = state.placements
    for ref in placements.keys() | wanted.keys():
        old = placements.get(ref, Placement())
        new_value = wanted.get(ref)
        if old.current == new_value:
            continue
        if spec.on_time(ref[1], clock_ms):
            new = Placement(new_value, new_value, old.late)
        else:
            new = Placement(old.ontime, new_value, old.late + 1)
        if new.empty:
            placements.pop(ref, None)
        else:
            placements[ref] = new
        changed.append(ref)
    if len(changed) > 1:
        changed.sort()
    return changed
