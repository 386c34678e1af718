"""Disputes against the money already given back on the same capture: what counts once, and where.

A dispute's money, open or lost, is `disputed_minor`, except what was given back for it, which is
counted as refunded instead:
- a reversal of the disputed capture (PayPal takes the money for a chargeback, or for a dispute it
  decided), whenever it came;
- a refund made while the dispute was open or within `SETTLING_GRACE` of its decision (PayPal's
  "accept claim" refunds the disputed amount; an accepted offer refunds part of it);
- beyond those, a later refund as far as refunds and disputes together would exceed the capture (a
  buyer never gets more than the capture back).
A refund from before the dispute is not netted: a charge refunded, then disputed and lost, is lost
twice. A dispute won gets the reversals given for it back: they count nothing (state `returned`).

Each reversal and refund goes to one dispute of its capture, the latest opened at or before it with
room left (a reversal that came first goes to the earliest opened after it), so several disputes on
one capture settle apart. A dispute first seen decided (its opening was not delivered) is taken as
opened `SETTLING_GRACE` before that. Times are the providers' (`occurred_at`), so the result does not
depend on the order events arrive in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from streams.fold_parts import Seen, components

__all__ = ["SETTLING_GRACE", "GivenBack", "Settled", "settle_disputes"]

SETTLING_GRACE = timedelta(hours=1)
"""How far from a dispute's decision a refund still counts as the one that settled it."""

_DECIDED = frozenset({"won", "lost"})


@dataclass(slots=True)
class GivenBack:
    """Refunds and reversals that succeeded (and what a cumulative total adds beyond them)."""

    items: list[tuple[datetime, str, str, str, int]] = field(default_factory=list)
    """(first seen, kind, id, scope, amount); id "" for what only a total states"""

    def add(self, first_at: datetime, kind: str, part_id: str, scope: str, amount: int) -> None:
        self.items.append((first_at, kind, part_id, scope, amount))


@dataclass(slots=True)
class Settled:
    disputes: dict[str, int] = field(default_factory=dict)
    dispute_states: dict[str, str] = field(default_factory=dict)
    disputed_minor: int = 0
    returned: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """reversal id -> what a won dispute got back of it"""


@dataclass(slots=True)
class _Claim:
    """One dispute of a capture, and the room its amount leaves for money given back for it."""

    dispute_id: str
    status: str
    room: int
    opened: datetime
    closes: datetime | None
    """end of the window in which a refund settles it (None: still open)"""


def settle_disputes(parts: dict[tuple[str, str], Seen], deciders: set[str], back: GivenBack,
                    captured_by_id: dict[str, int], captured_minor: int) -> Settled:
    settled = Settled()
    claims: dict[str, list[_Claim]] = defaultdict(list)
    for dispute_id, seen, latest in components(parts, "dispute", deciders):
        settled.disputes[dispute_id] = latest.amount_minor
        settled.dispute_states[dispute_id] = latest.status
        if latest.status not in ("open", "lost", "won"):
            continue  # an inquiry moves no money
        decided = seen.first_at_status(_DECIDED)
        opened = seen.first_at()
        if seen.first_status() in _DECIDED:
            opened -= SETTLING_GRACE
        closes = decided + SETTLING_GRACE if latest.status != "open" and decided is not None else None
        claims[seen.scope()].append(_Claim(dispute_id, latest.status, latest.amount_minor, opened, closes))

    unsettled: dict[str, list[tuple[datetime, int]]] = defaultdict(list)  # refunds no dispute took
    given: dict[str, int] = defaultdict(int)  # per scope, refunds and reversals less what comes back
    for first_at, kind, part_id, scope, amount in sorted(back.items):
        given[scope] += amount
        claim = _claim_for(claims.get(scope, []), first_at, reversal=kind == "reversal")
        taken = min(amount, claim.room) if claim is not None else 0
        if claim is not None:
            claim.room -= taken
            if claim.status == "won":
                settled.returned[part_id] += taken
                given[scope] -= taken
        if kind == "refund" and taken < amount:
            unsettled[scope].append((first_at, amount - taken))

    for scope, scope_claims in claims.items():
        at_stake = [c for c in scope_claims if c.status != "won"]
        if not at_stake:
            continue
        disputed = sum(c.room for c in at_stake)
        captured = captured_by_id.get(scope, captured_minor)
        if disputed and captured:  # an unknown capture bounds nothing
            opened = min(c.opened for c in at_stake)
            later = sum(amount for first_at, amount in unsettled.get(scope, ()) if first_at >= opened)
            disputed -= max(0, min(disputed, later, disputed + given[scope] - captured))
        settled.disputed_minor += disputed
    return settled


def _claim_for(claims: list[_Claim], at: datetime, *, reversal: bool) -> _Claim | None:
    """The dispute money given back `at` was for: the latest opened by then with room left; a reversal
    may come before its dispute's opening is known, a refund must come while the dispute can be settled."""
    open_by_then = [c for c in claims if c.room > 0 and c.opened <= at
                    and (reversal or (c.status != "won" and (c.closes is None or at <= c.closes)))]
    if open_by_then:
        return max(open_by_then, key=lambda c: (c.opened, c.dispute_id))
    if reversal:
        later = [c for c in claims if c.room > 0]
        return min(later, key=lambda c: (c.opened, c.dispute_id)) if later else None
    return None
