"""Every observation of one money part (a refund, reversal, dispute, capture or authorization) across a
payment's events: what `fold` reads a part's latest status, time and scope from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from schemas.records import HistoryEntry, MoneyPart

__all__ = ["COUNTED_REFUND", "REFUND_KINDS", "Seen", "components", "scope_of"]

# Within one provider second, the later stage of a part wins.
_REFUND_RANK = {"pending": 0, "succeeded": 1, "failed": 2, "canceled": 2}
_PART_RANK: dict[str, dict[str, int]] = {
    "refund": _REFUND_RANK,
    "reversal": _REFUND_RANK,
    "dispute": {"inquiry": 0, "open": 0, "won": 1, "lost": 1, "closed": 1},
    "capture": {"pending": 0, "failed": 1, "succeeded": 2},
    "authorization": {"open": 0, "captured": 1, "voided": 1},
}
COUNTED_REFUND = frozenset({"pending", "succeeded"})
REFUND_KINDS = ("refund", "reversal")


def scope_of(entry: HistoryEntry) -> str:
    """What a cumulative refund total counts over: one capture (PayPal), charge (Stripe) or sale."""
    related = entry.related_ids
    return related.get("capture") or related.get("charge") or related.get("sale") or ""


@dataclass(slots=True)
class Seen:
    """Every observation of one part, in fold order."""

    kind: str
    observations: list[tuple[datetime, int, str, MoneyPart, str]] = field(default_factory=list)
    """(time, stage rank, event key, part, scope of the event that stated it)"""

    def add(self, entry: HistoryEntry, part: MoneyPart) -> None:
        rank = _PART_RANK.get(self.kind, {}).get(part.status, 0)
        self.observations.append((entry.occurred_at, rank, entry.event_key, part, scope_of(entry)))

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
        first = self._first()[3].status
        return "pending" if self.kind in REFUND_KINDS and first not in COUNTED_REFUND else first

    def first_at(self) -> datetime:
        return min(o[0] for o in self.observations)

    def _first(self) -> tuple[datetime, int, str, MoneyPart, str]:
        return min(self.observations, key=lambda o: o[:3])

    def source(self) -> str:
        """The provider of the event that first stated the part (event keys are `<provider>:<event id>`)."""
        return self._first()[2].split(":", 1)[0]

    def first_status(self) -> str:
        return self._first()[3].status

    def reached_at(self, statuses: frozenset[str]) -> datetime | None:
        """When the part reached one of `statuses` to stay: its first such observation after the last other
        one (None: it is not in one of them now)."""
        at = None
        for o in sorted(self.observations, key=lambda o: o[:3]):
            if o[3].status not in statuses:
                at = None
            elif at is None:
                at = o[0]
        return at

    def scope(self) -> str:
        return self._first()[4]


def components(parts: dict[tuple[str, str], Seen], kind: str,
               deciders: set[str]) -> list[tuple[str, Seen, MoneyPart]]:
    """(id, observations, latest) of every part of `kind`, by id; notes the events that decided them."""
    found = []
    for (part_kind, part_id), seen in sorted(parts.items()):
        if part_kind == kind:
            deciders.add(seen.decider())
            found.append((part_id, seen, seen.latest()))
    return found
