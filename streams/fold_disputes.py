"""Disputes against the money already given back on the same capture: what counts once, and where.

A dispute's money, open or lost, is `disputed_minor`, except what was given back for it, which is
counted as refunded instead:
- a reversal of the disputed capture made while the dispute was open, up to `OPENING_LEAD` before
  its opening (PayPal takes the money for a chargeback, then opens the case) or `SETTLING_GRACE`
  after its decision;
- a refund made while the dispute was open or up to `SETTLING_GRACE` after its decision (PayPal's
  "accept claim" refunds the disputed amount; an accepted offer refunds part of it);
- beyond those, any later refund or reversal as far as refunds and disputes together would exceed
  the capture (a buyer never gets more than the capture back).
A refund from before the dispute is not netted: a charge refunded, then disputed and lost, is lost
twice. A won dispute gets the reversals given for it back: they count nothing, and a reversal that
came back whole has refund state `returned`.

Each reversal and refund goes to the disputes of its capture whose window holds it, nearest opening
first (what one cannot take passes to the next), so several disputes on one capture settle apart.
A dispute first seen decided (its opening was not delivered) is taken as opened `OPENING_LEAD`
before that. Money known only from a cumulative total is dated at the total that first said it.
Times are the providers' (`occurred_at`), so the result does not depend on the order events arrive in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from streams.fold_parts import Seen, components

__all__ = ["OPENING_LEAD", "SETTLING_GRACE", "GivenBack", "Settled", "settle_disputes"]

SETTLING_GRACE = timedelta(minutes=5)
"""How long after a dispute's decision a refund or reversal is still the one that settled it."""
OPENING_LEAD = timedelta(hours=1)
"""How long before a dispute's opening a reversal is still its own (and the assumed opening of a dispute
first seen decided)."""

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
    """end of the window in which money given back settles it (None: still open)"""

    def holds(self, at: datetime, *, reversal: bool) -> bool:
        if self.room <= 0 or (self.closes is not None and at > self.closes):
            return False
        if reversal:
            return at >= self.opened - OPENING_LEAD
        return at >= self.opened and self.status != "won"  # a refund stays a refund when the dispute is won


def settle_disputes(parts: dict[tuple[str, str], Seen], deciders: set[str], back: GivenBack,
                    captured_by_id: dict[str, int]) -> Settled:
    settled = Settled()
    claims: dict[str, list[_Claim]] = defaultdict(list)
    for dispute_id, seen, latest in components(parts, "dispute", deciders):
        settled.disputes[dispute_id] = latest.amount_minor
        settled.dispute_states[dispute_id] = latest.status
        if latest.status not in ("open", "lost", "won"):
            continue  # an inquiry moves no money
        opened = seen.first_at()
        if seen.first_status() in _DECIDED:
            opened -= OPENING_LEAD
        decided = seen.reached_at(_DECIDED)
        closes = decided + SETTLING_GRACE if decided is not None else None
        claims[seen.scope()].append(_Claim(dispute_id, latest.status, latest.amount_minor, opened, closes))

    unsettled: dict[str, list[tuple[datetime, int]]] = defaultdict(list)  # given back for no dispute
    given: dict[str, int] = defaultdict(int)  # per scope, refunds and reversals less what came back
    for at, kind, part_id, scope, amount in sorted(back.items):
        reversal = kind == "reversal"
        left = amount
        for claim in sorted((c for c in claims.get(scope, ()) if c.holds(at, reversal=reversal)),
                            key=lambda c: (abs(c.opened - at), c.opened > at, c.dispute_id)):
            taken = min(left, claim.room)
            claim.room -= taken
            left -= taken
            if claim.status == "won":
                settled.returned[part_id] += taken
            if not left:
                break
        given[scope] += amount - settled.returned.get(part_id, 0) if reversal else amount
        if left:
            unsettled[scope].append((at, left))

    for scope, scope_claims in claims.items():
        at_stake = [c for c in scope_claims if c.status != "won"]
        disputed = sum(c.room for c in at_stake)
        # the capture the disputes are about: PayPal's by capture id; Stripe's capture part has no id (one
        # charge's figure); an unknown capture bounds nothing
        captured = captured_by_id.get(scope, captured_by_id.get(""))
        if disputed and captured:
            opened = min(c.opened for c in at_stake)
            later = sum(amount for at, amount in unsettled.get(scope, ()) if at >= opened)
            disputed -= max(0, min(disputed, later, disputed + given[scope] - captured))
        settled.disputed_minor += disputed
    return settled
