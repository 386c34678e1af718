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
- disputes by dispute id with open/inquiry/won/lost/closed: open and lost ones are `disputed_minor`
  (an inquiry moves no money until it becomes a dispute), less what was given back for them
  (reversals, and refunds that settled them), which counts as refunded; a won dispute gets
  the reversals given for it back (refund state `returned`, counted nowhere). Which refund
  or reversal went to which dispute: `streams/fold_disputes.py`;
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
from streams.fold_disputes import GivenBack, settle_disputes
from streams.fold_flags import (
    FLAG_CONFLICTING_AMOUNTS,
    FLAG_CONFLICTING_CURRENCY,
    FLAG_OUT_OF_ORDER,
    delivery_flags,
    ignored_events,
)
from streams.fold_parts import COUNTED_REFUND, REFUND_KINDS, Seen, components, scope_of

__all__ = [
    "CONFIRMED_STATUSES",
    "FLAG_CONFLICTING_AMOUNTS",
    "FLAG_CONFLICTING_CURRENCY",
    "FLAG_OUT_OF_ORDER",
    "FOLD_REVISION",
    "Money",
    "entry_of",
    "fold",
]


FOLD_REVISION = 2
"""The revision of these rules, stored in every state they fold (`PaymentState.fold_revision`).

Bump it in the same commit as any change to what `fold` computes from the same events (the stories'
digest in `tests/streams/test_refold.py` fails until you do): a state folded by an older
revision is folded again when the worker's state sweep visits it or one of its events is replayed
(`paystream state rebuild`), and the sink lets the higher revision replace the row at the same version."""

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
_DISPUTE_PRECEDENCE = ("open", "lost", "inquiry", "won", "closed")
"""A payment's `dispute_status`: the first of these any of its disputes is in."""
_PAYPAL_DISPUTE_RESOLVED = "CUSTOMER.DISPUTE.RESOLVED"


def _parts_of(entry: HistoryEntry) -> list[MoneyPart]:
    """The event's parts; an event that states none (Standard Webhooks, records written before parts
    existed) implies them from its kind, status and amount."""
    if not entry.parts and entry.status is None and entry.event_type == _PAYPAL_DISPUTE_RESOLVED \
            and entry.amount_minor is not None:  # normalized before fold revision 2: no known outcome, no part
        return [MoneyPart("dispute", entry.related_ids.get("dispute", ""), entry.amount_minor, "closed")]
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


def fold(entries: Iterable[HistoryEntry]) -> Money:
    """The payment's state from its events' facts; the same set in any order gives the same result."""
    ordered = sorted(entries, key=_order)
    if not ordered:
        raise ValueError("fold needs at least one event")
    first, last = ordered[0], max(ordered, key=lambda e: (e.occurred_at, e.event_key))
    parts: dict[tuple[str, str], Seen] = {}
    currencies: list[str] = []
    base: HistoryEntry | None = None
    amount_entry: HistoryEntry | None = None
    requested_entry: HistoryEntry | None = None
    pre_capture_amounts: set[int] = set()
    totals: dict[str, HistoryEntry] = {}
    every_total: dict[str, list[HistoryEntry]] = defaultdict(list)
    latest_refund_status: str | None = None
    status_at = first.occurred_at
    confirmed_at: datetime | None = None
    for entry in ordered:
        if entry.currency is not None and entry.currency not in currencies:
            currencies.append(entry.currency)
        for part in _parts_of(entry):
            parts.setdefault((part.kind, part.id), Seen(part.kind)).add(entry, part)
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
                scope = scope_of(entry)
                every_total[scope].append(entry)
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
    known_by_scope: dict[str, list[Seen]] = defaultdict(list)
    disputed = any(kind == "dispute" for kind, _ in parts)  # else nothing is netted: skip the bookkeeping
    back = GivenBack()
    for kind in REFUND_KINDS:
        for refund_id, seen, latest in components(parts, kind, deciders):
            money.refunds[refund_id] = latest.amount_minor
            money.refund_states[refund_id] = latest.status
            if latest.status == "succeeded":
                money.refunded_minor += latest.amount_minor
                if disputed:
                    back.add(seen.first_at(), kind, refund_id, seen.scope(), latest.amount_minor)
            elif latest.status == "pending":
                money.refund_pending_minor += latest.amount_minor
            known_by_scope[seen.scope()].append(seen)
    for scope, total in totals.items():
        listed = known_by_scope.get(scope, [])
        beyond = _beyond(total, listed)
        money.refunded_minor += beyond
        deciders.add(total.event_key)
        for at, amount in _dated(every_total[scope], listed, beyond) if disputed else ():  # known only from totals
            back.add(at, "refund", "", scope, amount)

    if disputed:
        settled = settle_disputes(parts, deciders, back, captured_by_id)
        money.disputes, money.dispute_states, money.disputed_minor = \
            settled.disputes, settled.dispute_states, settled.disputed_minor
        for reversal_id, returned in settled.returned.items():
            money.refunded_minor -= returned
            if returned == money.refunds[reversal_id]:
                money.refund_states[reversal_id] = "returned"
    states = set(money.dispute_states.values())
    money.dispute_status = next((s for s in _DISPUTE_PRECEDENCE if s in states), None)

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


def _beyond(total: HistoryEntry, known: list[Seen]) -> int:
    """What a cumulative total says was refunded beyond the refunds known to be counted at its time."""
    explained = sum(seen.latest().amount_minor for seen in known if seen.status_at(total.occurred_at) in COUNTED_REFUND)
    return max(0, (total.refunded_total_minor or 0) - explained)


def _dated(totals: list[HistoryEntry], known: list[Seen], beyond: int) -> list[tuple[datetime, int]]:
    """When the `beyond` of the latest total was refunded: each total's growth of it at that total's time
    (money a later refund by id explained is taken off the newest)."""
    dated: list[tuple[datetime, int]] = []
    so_far = 0
    for total in totals:  # in fold order
        unexplained = _beyond(total, known)
        if unexplained > so_far:
            dated.append((total.occurred_at, unexplained - so_far))
            so_far = unexplained
    excess = so_far - beyond
    while excess > 0 and dated:
        at, amount = dated.pop()
        if amount > excess:
            dated.append((at, amount - excess))
        excess -= amount
    return dated
