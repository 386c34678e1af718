"""What a payment's events say about their delivery, beside the money: `Money.flags` and `ignored_events`."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from schemas.lifecycle import Kind
from schemas.records import HistoryEntry

__all__ = ["FLAG_CONFLICTING_AMOUNTS", "FLAG_CONFLICTING_CURRENCY", "FLAG_OUT_OF_ORDER", "delivery_flags",
           "ignored_events"]

FLAG_OUT_OF_ORDER = "out_of_order_seen"
FLAG_CONFLICTING_AMOUNTS = "conflicting_amounts"
FLAG_CONFLICTING_CURRENCY = "conflicting_currency"

_PAYMENT_KINDS = frozenset({Kind.PAYMENT.value, Kind.AUTHORIZATION.value})


def ignored_events(ordered: list[HistoryEntry]) -> list[str]:
    """Status events that arrived after a later one (by provider time) had already decided the payment."""
    ignored: list[str] = []
    earliest_later_arrival = None
    for entry in reversed(ordered):
        if entry.kind not in _PAYMENT_KINDS or entry.status is None or entry.received_at is None:
            continue
        if earliest_later_arrival is not None and entry.received_at > earliest_later_arrival:
            ignored.append(entry.event_key)
        if earliest_later_arrival is None or entry.received_at < earliest_later_arrival:
            earliest_later_arrival = entry.received_at
    return sorted(ignored)


def delivery_flags(ordered: list[HistoryEntry], currencies: list[str], pre_capture_amounts: set[int]) -> list[str]:
    flags: set[str] = set()
    if len(currencies) > 1:
        flags.add(FLAG_CONFLICTING_CURRENCY)
    if len(pre_capture_amounts) > 1:
        flags.add(FLAG_CONFLICTING_AMOUNTS)
    # delivered out of provider order: an event arrived before one that happened strictly earlier
    groups: dict[datetime, list[datetime]] = defaultdict(list)
    for entry in ordered:
        if entry.received_at is not None:
            groups[entry.occurred_at].append(entry.received_at)
    latest_earlier: datetime | None = None
    for occurred in sorted(groups):
        if latest_earlier is not None and min(groups[occurred]) < latest_earlier:
            flags.add(FLAG_OUT_OF_ORDER)
            break
        group_latest = max(groups[occurred])
        latest_earlier = group_latest if latest_earlier is None else max(latest_earlier, group_latest)
    return sorted(flags)
