"""The payment state machine: one canonical state per payment from out-of-order, duplicated events.

A payment's state is `streams.fold.fold` over the facts of every event applied to it,
kept in `history` in provider-time order. So it is pure, deterministic and
order-insensitive: the same events in any order, or replayed, give the same state.
An event is applied at most once per payment (recognised by its event key); events
of kind `other` change nothing. See `streams/fold.py` for the money rules.
"""

from __future__ import annotations

from dataclasses import replace

from schemas.lifecycle import Kind
from schemas.records import HistoryEntry, PaymentEvent, PaymentState
from streams.fold import (
    FLAG_CONFLICTING_AMOUNTS,
    FLAG_CONFLICTING_CURRENCY,
    FLAG_OUT_OF_ORDER,
    FOLD_REVISION,
    entry_of,
    fold,
)
from streams.identity import identify, payment_keys, resolved

_OTHER = Kind.OTHER.value

__all__ = ["FLAG_CONFLICTING_AMOUNTS", "FLAG_CONFLICTING_CURRENCY", "FLAG_OUT_OF_ORDER", "apply_event",
           "fold_all", "refold", "state_of"]


def apply_event(state: PaymentState | None, event: PaymentEvent) -> PaymentState | None:
    """The state after `event`, or None when the event changes nothing (kind other, or a replay)."""
    if event.kind == _OTHER:
        return None
    if state is not None and any(entry.event_key == event.event_key for entry in state.history):
        return None
    history = [entry_of(event)] if state is None else [*state.history, entry_of(event)]
    return state_of(event.provider, event.payment_id, history, traceparent=event.traceparent)


def refold(state: PaymentState) -> PaymentState | None:
    """The state folded again by the current rules when an older revision folded it, else None.

    Same events, same version: only what older rules computed from them can change. The state keeps its
    traceparent (no new event caused this)."""
    if state.fold_revision >= FOLD_REVISION:
        return None
    return state_of(state.provider, state.payment_id, list(state.history), traceparent=state.traceparent)


def state_of(provider: str, payment_id: str, history: list[HistoryEntry], *,
             traceparent: str | None = None) -> PaymentState:
    """The state whose applied events are `history` (any order)."""
    money = fold(history)
    ordered = sorted(history, key=lambda e: (e.occurred_at, e.event_key))
    deciders = money.deciders
    entries = [entry if entry.moved_status == (entry.event_key in deciders)
               else replace(entry, moved_status=entry.event_key in deciders) for entry in ordered]
    return PaymentState(
        payment_id=payment_id,
        provider=provider,
        status=money.status,
        status_at=money.status_at,
        created_at=money.first_at,
        updated_at=money.last_at,
        last_event_key=money.last_event_key,
        version=len(entries),
        fold_revision=FOLD_REVISION,
        amount_minor=money.amount_minor,
        captured_minor=money.captured_minor,
        refunded_minor=money.refunded_minor,
        disputed_minor=money.disputed_minor,
        authorized_minor=money.authorized_minor,
        refund_pending_minor=money.refund_pending_minor,
        dispute_status=money.dispute_status,
        dispute_count=len(money.disputes),
        refund_states=money.refund_states,
        disputes=money.disputes,
        dispute_states=money.dispute_states,
        currency=money.currency,
        refunds=money.refunds,
        flags=money.flags,
        ignored_events=money.ignored_events,
        history=entries,
        traceparent=traceparent,
    )


def fold_all(events: list[PaymentEvent]) -> dict[str, PaymentState]:
    """Payment key → state for a whole set of events at once, identities resolved as the worker does:
    the reference the streaming pipeline must reach (tests) and the way to rebuild states."""
    keys = payment_keys(events)
    grouped: dict[str, dict[str, PaymentEvent]] = {}
    for event in events:
        if event.kind == Kind.OTHER.value:
            continue
        key = keys[event.event_key]
        keyed = event
        if identify(event).payment is None and key != event.payment_key:
            keyed = resolved(event, key.split(":", 1)[1])
        grouped.setdefault(key, {}).setdefault(keyed.event_key, keyed)
    states: dict[str, PaymentState] = {}
    for key, by_key in grouped.items():
        provider, payment_id = key.split(":", 1)
        states[key] = state_of(provider, payment_id, [entry_of(e) for e in by_key.values()])
    return states
