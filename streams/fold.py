"""One payment's money and status as a pure fold of its events' facts.

`fold` reads the set of a payment's applied events (`HistoryEntry`, one per event)
and sorts them first, so every arrival order of the same events gives the same
result; the state machine (`streams/state.py`) and reconciliation
(`streams/reconcile/facts.py`) both call it, so their rules cannot drift apart.

Money is kept by component, never as "the last value written":
- captures by capture id (a provider's running figure such as Stripe's
  `amount_captured` is per capture: the largest succeeded figure counts);
- refunds (and reversals: money the provider took back, PayPal) by id with their own status:
  succeeded ones are `refunded_minor`,
  pending ones `refund_pending_minor`, failed and canceled ones nothing. A provider's
  cumulative total (Stripe's `amount_refunded`, PayPal's `total_refunded_amount`) is a
  total: it adds only what the refunds known to be counted at its time do not explain;
- disputes by dispute id with open/inquiry/won/lost: open and lost ones are `disputed_minor`
  (an inquiry moves no money until it becomes a dispute), less what reversals of the same
  capture already took, and less what refunds of it made once the dispute was open gave back
  as far as refunds and disputes together would exceed the capture (a buyer never gets more
  than the capture back; a refund from before the dispute is not netted, as a charge refunded
  and then disputed and lost is lost twice). A dispute won after a reversal of its capture gets
  that reversal back: its refund state is `returned` and it counts nothing;
- authorizations by id: what is open and not yet captured is `authorized_minor`.

The status is derived from those components, in this precedence: an open dispute or inquiry,
a lost dispute, refunds (full or partial against the captured amount), a won dispute,
then the payment's own status (its latest payment or authorization event by provider
time, status rank as tie-break; any succeeded capture makes it at least `succeeded`).
So a later plain payment event (`charge.updated`, a late `payment_intent.succeeded`)
can never undo a refund or a dispute.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from schemas.lifecycle import STATUS_RANK, Kind, Status
from schemas.records import HistoryEntry, MoneyPart, PaymentEvent
from streams.fold_flags import (
    FLAG_CONFLICTING_AMOUNTS,
    FLAG_CONFLICTING_CURRENCY,
    FLAG_OUT_OF_ORDER,
    delivery_flags,
    ignored_events,
)

__all__ = [
    "CONFIRMED_STATUSES",
    "FLAG_CONFLICTING_AMOUNTS",
    "FLAG_CONFLICTING_CURRENCY",
    "FLAG_OUT_OF_ORDER",
    "Money",
    "entry_of",
    "fold",
]


CONFIRMED_STATUSES = frozenset({
    Status.SUCCEEDED.value, Status.PARTIALLY_REFUNDED.value, Status.REFUNDED.value,
    Status.DISPUTED.value, Status.DISPUTE_WON.value, Status.DISPUTE_LOST.value,
})
"""Statuses that prove the provider captured the money (refunds and disputes come after a capture)."""

# plain strings: an enum's .value is a descriptor call, and the fold runs per event
_KIND_AUTHORIZATION = Kind.AUTHORIZATION.value
_KIND_DISPUTE = Kind.DISPUTE.value
_KIND_OTHER = Kind.OTHER.value
_KIND_PAYMENT = Kind.PAYMENT.value
_KIND_REFUND = Kind.REFUND.value
_STATUS_AUTHORIZED = Status.AUTHORIZED.value
_STATUS_CANCELED = Status.CANCELED.value
_STATUS_CREATED = Status.CREATED.value
_STATUS_DISPUTED = Status.DISPUTED.value
_STATUS_DISPUTE_LOST = Status.DISPUTE_LOST.value
_STATUS_DISPUTE_WON = Status.DISPUTE_WON.value
_STATUS_FAILED = Status.FAILED.value
_STATUS_PARTIALLY_REFUNDED = Status.PARTIALLY_REFUNDED.value
_STATUS_PROCESSING = Status.PROCESSING.value
_STATUS_REFUNDED = Status.REFUNDED.value
_STATUS_REQUIRES_ACTION = Status.REQUIRES_ACTION.value
_STATUS_SUCCEEDED = Status.SUCCEEDED.value
_RANK = {status.value: rank for status, rank in STATUS_RANK.items()}
_PAYMENT_KINDS = frozenset({_KIND_PAYMENT, _KIND_AUTHORIZATION})
_PRE_CAPTURE = frozenset({_STATUS_CREATED, _STATUS_REQUIRES_ACTION, _STATUS_PROCESSING,
                          _STATUS_AUTHORIZED, _STATUS_FAILED, _STATUS_CANCELED})
_ENDED = frozenset({_STATUS_FAILED, _STATUS_CANCELED})
# Within one provider second, the later stage of a part wins.
_REFUND_RANK = {"pending": 0, "succeeded": 1, "failed": 2, "canceled": 2}
_PART_RANK: dict[str, dict[str, int]] = {
    "refund": _REFUND_RANK,
    "reversal": _REFUND_RANK,
    "dispute": {"inquiry": 0, "open": 0, "won": 1, "lost": 1},
    "capture": {"pending": 0, "failed": 1, "succeeded": 2},
    "authorization": {"open": 0, "captured": 1, "voided": 1},
}
_COUNTED_REFUND = frozenset({"pending", "succeeded"})
_REFUND_KINDS = ("refund", "reversal")


@dataclass(slots=True)
class Money:
    """What `fold` derives: the payment's status and every money component."""

    status: str
    status_at: datetime
    first_at: datetime
    last_at: datetime
    last_event_key: str
    amount_minor: int | None = None
    captured_minor: int = 0
    authorized_minor: int = 0
    refunded_minor: int = 0
    refund_pending_minor: int = 0
    disputed_minor: int = 0
    dispute_status: str | None = None
    currency: str | None = None
    confirmed_at: datetime | None = None
    refunds: dict[str, int] = field(default_factory=dict)
    refund_states: dict[str, str] = field(default_factory=dict)
    disputes: dict[str, int] = field(default_factory=dict)
    dispute_states: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    ignored_events: list[str] = field(default_factory=list)
    deciders: frozenset[str] = frozenset()
    """Event keys that decided a component's status (`HistoryEntry.moved_status`)."""


_FOLDED_IDS = ("capture", "charge", "sale", "refund", "dispute")


def entry_of(event: PaymentEvent) -> HistoryEntry:
    """The facts of one event that the fold reads (and only those: a state carries one per event)."""
    related = event.related_ids
    return HistoryEntry(
        event_key=event.event_key, event_type=event.event_type, kind=event.kind, occurred_at=event.occurred_at,
        status=event.status, amount_minor=event.amount_minor, received_at=event.received_at,
        currency=event.currency, related_ids={k: related[k] for k in _FOLDED_IDS if k in related},
        refunded_total_minor=event.refunded_total_minor, parts=list(event.parts),
    )


_DISPUTE_OUTCOME = {_STATUS_DISPUTED: "open", _STATUS_DISPUTE_WON: "won", _STATUS_DISPUTE_LOST: "lost"}


def _parts_of(entry: HistoryEntry) -> list[MoneyPart]:
    """The event's parts; an event that states none (Standard Webhooks, records written before parts
    existed) implies them from its kind, status and amount."""
    if entry.parts or entry.amount_minor is None or entry.status is None:
        return entry.parts
    amount, status = entry.amount_minor, entry.status
    if entry.kind in _PAYMENT_KINDS:
        implied = {_STATUS_SUCCEEDED: MoneyPart("capture", "", amount, "succeeded"),
                   _STATUS_AUTHORIZED: MoneyPart("authorization", "", amount, "open")}.get(status)
        return [implied] if implied is not None else []
    if entry.kind == _KIND_REFUND:
        refund_id = entry.related_ids.get("refund")
        if refund_id is None and entry.refunded_total_minor is not None:
            return []  # a total alone: counted as a total
        return [MoneyPart("refund", refund_id or f"event:{entry.event_key}", amount, "succeeded")]
    if entry.kind == _KIND_DISPUTE and status in _DISPUTE_OUTCOME:
        return [MoneyPart("dispute", entry.related_ids.get("dispute", ""), amount, _DISPUTE_OUTCOME[status])]
    return []


def _order(entry: HistoryEntry) -> tuple[datetime, int, str]:
    return entry.occurred_at, _RANK.get(entry.status or "", -1), entry.event_key


def _scope(entry: HistoryEntry) -> str:
    """What a cumulative refund total counts over: one capture (PayPal), charge (Stripe) or sale."""
    related = entry.related_ids
    return related.get("capture") or related.get("charge") or related.get("sale") or ""


@dataclass(slots=True)
class _Seen:
    """Every observation of one part, in fold order."""

    kind: str
    observations: list[tuple[datetime, int, str, MoneyPart, str]] = field(default_factory=list)
    """(time, stage rank, event key, part, scope of the event that stated it)"""

    def add(self, entry: HistoryEntry, part: MoneyPart) -> None:
        rank = _PART_RANK.get(self.kind, {}).get(part.status, 0)
        self.observations.append((entry.occurred_at, rank, entry.event_key, part, _scope(entry)))

    def latest(self) -> MoneyPart:
        return max(self.observations, key=lambda o: o[:3])[3]

    def decider(self) -> str:
        return max(self.observations, key=lambda o: o[:3])[2]

    def status_at(self, when: datetime) -> str:
        """The status as of `when`; a part first seen later is taken as it was first seen, except that a
        refund first seen failed or canceled was pending before: no refund is created failed, and a
        provider's total from before its failure counted it (Stripe's `amount_refunded` does)."""
        before = [o for o in self.observations if o[0] <= when]
        if before:
            return max(before, key=lambda o: o[:3])[3].status
        first = min(self.observations, key=lambda o: o[:3])[3].status
        return "pending" if self.kind in _REFUND_KINDS and first not in _COUNTED_REFUND else first

    def first_at(self) -> datetime:
        return min(o[0] for o in self.observations)

    def scope(self) -> str:
        return min(self.observations, key=lambda o: o[:3])[4]


def fold(entries: Iterable[HistoryEntry]) -> Money:
    """The payment's state from its events' facts; the same set in any order gives the same result."""
    ordered = sorted(entries, key=_order)
    if not ordered:
        raise ValueError("fold needs at least one event")
    first, last = ordered[0], max(ordered, key=lambda e: (e.occurred_at, e.event_key))
    parts: dict[tuple[str, str], _Seen] = {}
    currencies: list[str] = []
    base: HistoryEntry | None = None
    amount_entry: HistoryEntry | None = None
    requested_entry: HistoryEntry | None = None
    pre_capture_amounts: set[int] = set()
    totals: dict[str, HistoryEntry] = {}
    latest_refund_status: str | None = None
    status_at = first.occurred_at
    confirmed_at: datetime | None = None
    for entry in ordered:
        if entry.currency is not None and entry.currency not in currencies:
            currencies.append(entry.currency)
        for part in _parts_of(entry):
            parts.setdefault((part.kind, part.id), _Seen(part.kind)).add(entry, part)
        if entry.kind == _KIND_OTHER:
            continue
        if entry.status is not None:
            status_at = max(status_at, entry.occurred_at)
            if entry.status in CONFIRMED_STATUSES and confirmed_at is None:
                confirmed_at = entry.occurred_at
        if entry.kind in _PAYMENT_KINDS:
            if entry.status is not None:
                base = entry  # ordered: the last one is the latest by time, then rank
            if entry.amount_minor is not None:
                amount_entry = entry
                if entry.status in _PRE_CAPTURE:
                    requested_entry = entry
                    pre_capture_amounts.add(entry.amount_minor)
        elif entry.kind == _KIND_REFUND:
            if entry.refunded_total_minor is not None:
                scope = _scope(entry)
                known = totals.get(scope)
                # ordered by time; within one provider second a cumulative total only grows
                if known is None or known.occurred_at < entry.occurred_at or \
                        entry.refunded_total_minor >= (known.refunded_total_minor or 0):
                    totals[scope] = entry
            if entry.status is not None:
                latest_refund_status = entry.status

    money = Money(status=_STATUS_CREATED, status_at=status_at, first_at=first.occurred_at,
                  last_at=last.occurred_at, last_event_key=last.event_key, confirmed_at=confirmed_at,
                  currency=currencies[0] if currencies else None)
    # the amount asked for (or held) before any capture; a capture's own figure only when no such event came
    amount_entry = requested_entry or amount_entry
    money.amount_minor = amount_entry.amount_minor if amount_entry is not None else None
    deciders: set[str] = set()

    # captures and authorizations
    authorized_open = 0
    captured_by_id: dict[str, int] = {}  # succeeded captures by id: the most a disputed capture gives back
    for (kind, part_id), seen in parts.items():
        latest = seen.latest()
        if kind == "capture" and latest.status == "succeeded":
            captured = max(o[3].amount_minor for o in seen.observations if o[3].status == "succeeded")
            captured_by_id[part_id] = captured
            money.captured_minor += captured
        elif kind == "authorization" and latest.status == "open":
            authorized_open += latest.amount_minor

    # refunds and reversals: by id, plus what a cumulative total says beyond them
    known_by_scope: dict[str, list[_Seen]] = defaultdict(list)
    back = _GivenBack()
    for kind in _REFUND_KINDS:
        for refund_id, seen, latest in _components(parts, kind, deciders):
            money.refunds[refund_id] = latest.amount_minor
            money.refund_states[refund_id] = latest.status
            if latest.status == "succeeded":
                money.refunded_minor += latest.amount_minor
                back.add(kind, refund_id, seen, latest.amount_minor)
            elif latest.status == "pending":
                money.refund_pending_minor += latest.amount_minor
            known_by_scope[seen.scope()].append(seen)
    for scope, total in totals.items():
        explained = sum(seen.latest().amount_minor for seen in known_by_scope.get(scope, ())
                        if seen.status_at(total.occurred_at) in _COUNTED_REFUND)
        beyond = max(0, (total.refunded_total_minor or 0) - explained)
        money.refunded_minor += beyond
        back.refunded[scope] += beyond
        deciders.add(total.event_key)
    _disputes(money, parts, deciders, back, captured_by_id)
    states = set(money.dispute_states.values())
    money.dispute_status = "open" if "open" in states else "lost" if "lost" in states else \
        "inquiry" if "inquiry" in states else "won" if "won" in states else None

    # the payment's own status, then the components over it
    own = base.status if base is not None and base.status is not None else _STATUS_CREATED
    if base is not None:
        deciders.add(base.event_key)
    if money.captured_minor > 0 and own in _PRE_CAPTURE:
        own = _STATUS_SUCCEEDED
    if own not in _ENDED and money.captured_minor < authorized_open:
        money.authorized_minor = authorized_open - money.captured_minor
    basis = money.captured_minor or money.amount_minor or 0
    if money.dispute_status in ("open", "inquiry"):
        status = _STATUS_DISPUTED
    elif money.dispute_status == "lost":
        status = _STATUS_DISPUTE_LOST
    elif money.refunded_minor > 0:
        full = money.refunded_minor >= basis if basis else latest_refund_status == _STATUS_REFUNDED
        status = _STATUS_REFUNDED if full else _STATUS_PARTIALLY_REFUNDED
    elif money.dispute_status == "won":
        status = _STATUS_DISPUTE_WON
    else:
        status = own
    money.status = status
    money.deciders = frozenset(deciders)
    money.ignored_events = ignored_events(ordered)
    money.flags = delivery_flags(ordered, currencies, pre_capture_amounts)
    return money


@dataclass(slots=True)
class _GivenBack:
    """Refunds and reversals that succeeded, per scope (capture, charge or sale): what disputes net against."""

    refunded: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """refunds and reversals, and what a cumulative total adds beyond them"""
    reversed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    refunds: list[tuple[str, datetime, int]] = field(default_factory=list)
    """(scope, first seen, amount) of each refund"""
    reversals: list[tuple[datetime, str, str, int]] = field(default_factory=list)
    """(first seen, id, scope, amount) of each reversal"""

    def add(self, kind: str, part_id: str, seen: _Seen, amount: int) -> None:
        scope = seen.scope()
        self.refunded[scope] += amount
        if kind == "reversal":
            self.reversed[scope] += amount
            self.reversals.append((seen.first_at(), part_id, scope, amount))
        else:
            self.refunds.append((scope, seen.first_at(), amount))


def _disputes(money: Money, parts: dict[tuple[str, str], _Seen], deciders: set[str], back: _GivenBack,
              captured_by_id: dict[str, int]) -> None:
    """Disputes by id. Money already given back on a disputed capture is counted once, as refunded: a
    reversal of it, and a refund made once the dispute was open (PayPal's "accept claim" refunds the
    disputed amount) as far as refunds and disputes together would exceed the capture. A dispute won
    after a reversal of its capture gets that reversal back (PayPal returns the money it took for a
    chargeback decided for the merchant)."""
    at_stake: dict[str, int] = defaultdict(int)
    won: dict[str, int] = defaultdict(int)
    opened: dict[tuple[str, bool], datetime] = {}
    for dispute_id, seen, latest in _components(parts, "dispute", deciders):
        money.disputes[dispute_id] = latest.amount_minor
        money.dispute_states[dispute_id] = latest.status
        scope, was_won = seen.scope(), latest.status == "won"
        if latest.status in ("open", "lost"):
            at_stake[scope] += latest.amount_minor
        elif was_won:
            won[scope] += latest.amount_minor
        else:
            continue
        opened[(scope, was_won)] = min(opened.get((scope, was_won), seen.first_at()), seen.first_at())
    for scope, amount in at_stake.items():
        disputed = max(0, amount - back.reversed.get(scope, 0))
        refunded_since = sum(refund for refund_scope, first_at, refund in back.refunds
                             if refund_scope == scope and first_at >= opened[(scope, False)])
        beyond_capture = disputed + back.refunded.get(scope, 0) - captured_by_id.get(scope, money.captured_minor)
        money.disputed_minor += disputed - max(0, min(disputed, refunded_since, beyond_capture))
    for scope, amount in won.items():
        # reversals made once the won dispute was open that no open or lost dispute took, whole ones, oldest first
        returnable = min(amount, back.reversed.get(scope, 0) - at_stake.get(scope, 0))
        for first_at, reversal_id, reversal_scope, reversed_amount in sorted(back.reversals):
            if reversal_scope == scope and first_at >= opened[(scope, True)] and reversed_amount <= returnable:
                returnable -= reversed_amount
                money.refunded_minor -= reversed_amount
                money.refund_states[reversal_id] = "returned"


def _components(parts: dict[tuple[str, str], _Seen], kind: str,
                deciders: set[str]) -> list[tuple[str, _Seen, MoneyPart]]:
    """(id, observations, latest) of every part of `kind`, by id; notes the events that decided them."""
    found = []
    for (part_kind, part_id), seen in sorted(parts.items()):
        if part_kind == kind:
            deciders.add(seen.decider())
            found.append((part_id, seen, seen.latest()))
    return found
