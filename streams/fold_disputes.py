"""Disputes against the money already given back on the same capture: what counts once, and where.

A dispute's money, open or lost, is `disputed_minor`, except what was given back for it, which is
counted as refunded instead:
- a reversal of the disputed capture (PayPal takes the money for a chargeback, or for a dispute it
  decided): first one made while the dispute was open, up to `OPENING_LEAD` before its opening
  (PayPal reverses, then opens the case) or `SETTLING_GRACE` after its decision; then, for a dispute
  still open or lost, any other reversal of that capture;
- for a PayPal dispute, a refund made while it was open or up to `SETTLING_GRACE` after its decision
  (accepting a claim refunds the disputed amount; an accepted offer refunds part of it), and beyond
  those any other refund or reversal of the capture as far as refunds and disputes together would
  exceed it (a PayPal buyer never gets more than the capture back: money PayPal takes twice, for a
  refunded capture charged back, comes as a reversal and shows as refunded).
Stripe refuses to refund disputed money and withdraws a dispute's amount whatever was refunded
before (a charge refunded, then disputed and lost, is lost twice), so a Stripe refund never settles
a dispute. A won dispute gets the reversals given for it in its window back: they count nothing, and
a reversal that came back whole has refund state `returned`. A closed dispute (PayPal resolved it with
no outcome stated) has nothing at stake, but takes what was given back in its window like a decided one,
so a reversal PayPal made for it stays refunded and settles no other dispute.

Each reversal and refund goes to the disputes of its capture whose window holds it, one whose room
is exactly its amount first (a chargeback's reversal is its amount), then the nearest opening (what
one cannot take passes to the next), so several disputes on one capture settle apart. A dispute
first seen decided (its opening was not delivered) is taken as opened `OPENING_LEAD` before that;
a PayPal one lost that way is also settled by any earlier refund no other dispute took. Money known
only from a cumulative total is dated at the total that first said it.
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
OPENING_LEAD = timedelta(days=1)
"""How long before a dispute's opening a reversal is still its own (PayPal may reverse a chargeback before
the case reaches the merchant), and how long before its first event a dispute first seen decided opened."""

_DECIDED = frozenset({"won", "lost", "closed"})
_AT_STAKE = frozenset({"open", "lost"})


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


_REFUNDS_SETTLE = frozenset({"paypal"})
"""Providers whose merchant refunds can settle a dispute (the prefix of the dispute's event keys)."""


@dataclass(slots=True)
class _Claim:
    """One dispute of a capture, and the room its amount leaves for money given back for it."""

    dispute_id: str
    status: str
    room: int
    opened: datetime
    closes: datetime | None
    """end of the window in which money given back settles it (None: still open)"""
    refunds_settle: bool
    opening_seen: bool

    def holds(self, at: datetime, *, reversal: bool) -> bool:
        if self.room <= 0 or (self.closes is not None and at > self.closes):
            return False
        if reversal:
            return at >= self.opened - OPENING_LEAD
        # a refund stays a refund when the dispute is won
        return self.refunds_settle and at >= self.opened and self.status != "won"

    def preference(self, at: datetime, amount: int) -> tuple[bool, timedelta, bool, str]:
        """The dispute whose room is exactly the amount first (a chargeback's reversal is its amount,
        where a claim opened near it may be larger), then the nearest opening."""
        return self.room != amount, abs(self.opened - at), self.opened > at, self.dispute_id


def settle_disputes(parts: dict[tuple[str, str], Seen], deciders: set[str], back: GivenBack,
                    captured_by_id: dict[str, int]) -> Settled:
    settled = Settled()
    claims: dict[str, list[_Claim]] = defaultdict(list)
    for dispute_id, seen, latest in components(parts, "dispute", deciders):
        settled.disputes[dispute_id] = latest.amount_minor
        settled.dispute_states[dispute_id] = latest.status
        if latest.status not in ("open", "lost", "won", "closed"):
            continue  # an inquiry moves no money
        opened = seen.first_at()
        opening_seen = seen.first_status() not in _DECIDED
        if not opening_seen:
            opened -= OPENING_LEAD
        decided = seen.reached_at(_DECIDED)
        closes = decided + SETTLING_GRACE if decided is not None else None
        claims[seen.scope()].append(_Claim(dispute_id, latest.status, latest.amount_minor, opened, closes,
                                           seen.source() in _REFUNDS_SETTLE, opening_seen))

    left_over: list[tuple[datetime, str, str, str, int]] = []
    for at, kind, part_id, scope, amount in sorted(back.items):
        reversal = kind == "reversal"
        left = _give(settled, [c for c in claims.get(scope, ()) if c.holds(at, reversal=reversal)], at, part_id,
                     amount)
        if left:
            left_over.append((at, kind, part_id, scope, left))
    unsettled: dict[str, list[tuple[datetime, int]]] = defaultdict(list)  # given back for no dispute
    for at, kind, part_id, scope, amount in left_over:
        if kind == "reversal":  # the provider took it back: for whichever open or lost dispute has room
            takers = [c for c in claims.get(scope, ()) if c.status in _AT_STAKE]
        else:  # a PayPal dispute lost whose opening was not delivered: its settling refund may be any earlier
            takers = [c for c in claims.get(scope, ())
                      if c.refunds_settle and c.status == "lost" and not c.opening_seen and at <= c.opened]
        left = _give(settled, takers, at, part_id, amount)
        if left:
            unsettled[scope].append((at, left))

    given: dict[str, int] = defaultdict(int)  # per scope, refunds and reversals less what came back
    for _, _, part_id, scope, amount in back.items:
        given[scope] += amount - settled.returned.get(part_id, 0)
    for scope, scope_claims in claims.items():
        at_stake = [c for c in scope_claims if c.status in _AT_STAKE]
        settled.disputed_minor += sum(c.room for c in at_stake if not c.refunds_settle)
        disputed = sum(c.room for c in at_stake if c.refunds_settle)
        captured = captured_by_id.get(scope)  # an unknown capture bounds nothing
        if disputed and captured:
            other = sum(amount for _, amount in unsettled.get(scope, ()))
            disputed -= max(0, min(disputed, other, disputed + given[scope] - captured))
        settled.disputed_minor += disputed
    return settled


def _give(settled: Settled, claims: list[_Claim], at: datetime, part_id: str, amount: int) -> int:
    """`amount` given back `at` to `claims`, preferred first, as far as their room goes; what is left."""
    for claim in sorted((c for c in claims if c.room > 0), key=lambda c: c.preference(at, amount)):
        if not amount:
            break
        taken = min(amount, claim.room)
        claim.room -= taken
        amount -= taken
        if claim.status == "won":
            settled.returned[part_id] += taken
    return amount
