"""One payment, one key: which canonical payment an event belongs to, and the links that tell.

The canonical payment id per provider (docs/architecture.md, "Identity"):
- Stripe: the PaymentIntent (`pi_…`); a legacy charge with no PaymentIntent is its own payment.
  A Charge object always says which (`payment_intent` or null), so every charge event knows;
  a refund or dispute that names only its charge (`payment_intent: null`) does not.
- PayPal: the order (Orders v2); an authorization that names no order, and a v1 sale, is its
  own payment, and so is a capture that names neither an order nor an authorization. A capture
  that names only its authorization (`links[rel=up]`, no `supplementary_data`, as older
  deliveries do) belongs to the authorization's payment: it is held until an order or
  authorization event links the authorization, and once resolved links its own id. Refunds and
  disputes name only the capture (or sale).
- Standard Webhooks: the payload's payment id.

An event that knows its payment links its aliases (charge, capture, authorization, sale ids)
to it; an event that does not is resolved through the alias entry of the id it names, or held
there until the link arrives, so a dispute that beats its charge is never a second payment.
Alias entries live in the state table under `ALIAS_PREFIX` + `<provider>:<alias id>`, on the
partition of that alias's payment key, and are changelogged with the states.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from schemas.lifecycle import Kind
from schemas.records import PaymentEvent

__all__ = ["ALIAS_PREFIX", "LINK_EVENT_TYPE", "RESOLVED", "AliasEntry", "Identity", "identify", "link_event",
           "resolved"]

ALIAS_PREFIX = b"\x00alias:"
LINK_EVENT_TYPE = "paystream.link"
"""Event type of an internal link record (state-input topic only): `payment_id` is the alias,
`related_ids["payment"]` the canonical payment."""
RESOLVED = "payment"
"""`related_ids` key the worker sets on an event it resolved to its canonical payment."""

_STRIPE_ALIASES = ("charge",)
_PAYPAL_ALIASES = ("capture", "authorization", "sale")


@dataclass(frozen=True, slots=True)
class Identity:
    """`payment`: the canonical payment id, or None when the event cannot know it (resolve via `alias`)."""

    payment: str | None
    alias: str | None = None
    links: tuple[str, ...] = ()
    """Alias ids this event proves belong to `payment`."""


def identify(event: PaymentEvent) -> Identity:
    """Where `event` belongs, from what its own payload states."""
    related = event.related_ids
    if RESOLVED in related:  # resolved through an alias: what else it proves still links (a held capture's own id)
        stated = _stated(event, related)
        return Identity(related[RESOLVED], links=tuple(a for a in stated.links if a != stated.alias))
    return _stated(event, related)


def _stated(event: PaymentEvent, related: dict[str, str]) -> Identity:
    if event.kind == Kind.OTHER.value:
        return Identity(event.payment_id)  # changes no payment: nothing to resolve or hold
    if event.provider == "stripe":
        return _stripe(event, related)
    if event.provider == "paypal":
        return _paypal(event, related)
    return Identity(event.payment_id)


def _stripe(event: PaymentEvent, related: dict[str, str]) -> Identity:
    links = tuple(related[k] for k in _STRIPE_ALIASES if k in related)
    if "payment_intent" in related:
        return Identity(related["payment_intent"], links=links)
    # a Charge object knows its payment; a refund sent as `charge.refund.updated` (even one voiding a hold) does not
    charge_object = event.event_type.startswith("charge.") and "refund" not in related \
        and event.kind in (Kind.PAYMENT.value, Kind.AUTHORIZATION.value)
    about_a_charge = charge_object or event.event_type == "charge.refunded"
    if about_a_charge or "charge" not in related:
        return Identity(event.payment_id, links=links)
    return Identity(None, alias=related["charge"])


def _paypal(event: PaymentEvent, related: dict[str, str]) -> Identity:
    ids = [related[k] for k in _PAYPAL_ALIASES if k in related]
    ids += [p.id for p in event.parts if p.kind in ("capture", "authorization") and p.id]
    links = tuple(dict.fromkeys(ids))
    if "order" in related:
        return Identity(related["order"], links=links)
    if event.kind == Kind.PAYMENT.value and "authorization" in related and "capture" in related:
        return Identity(None, alias=related["authorization"], links=links)  # the authorization's payment
    if event.kind in (Kind.PAYMENT.value, Kind.AUTHORIZATION.value) or "sale" in related:
        return Identity(event.payment_id, links=links)
    return Identity(None, alias=event.payment_id)


def resolved(event: PaymentEvent, payment: str) -> PaymentEvent:
    """`event` re-keyed to its canonical payment, marked so nobody resolves it again."""
    return replace(event, payment_id=payment, related_ids={**event.related_ids, RESOLVED: payment})


def link_event(cause: PaymentEvent, alias: str, payment: str) -> PaymentEvent:
    """The internal record that tells the alias's partition which payment `alias` belongs to."""
    return PaymentEvent(
        event_key=f"link:{cause.provider}:{alias}", payment_id=alias, provider=cause.provider,
        event_type=LINK_EVENT_TYPE, kind=Kind.OTHER.value, occurred_at=cause.occurred_at,
        envelope_id=cause.envelope_id, received_at=cause.received_at, related_ids={RESOLVED: payment},
    )


Headers = list[tuple[str, bytes]]


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


@dataclass(slots=True)
class AliasEntry:
    """What one alias id's partition knows: its payment (once linked) and the events held for it.

    Held events (encoded, with their record headers) are kept after release, so replaying the link
    after a crash sends them again (downstream applies an event once by its key)."""

    payment: str | None = None
    held: dict[str, tuple[bytes, Headers]] = field(default_factory=dict)
    """event key -> (encoded PaymentEvent, headers)"""
    touched_ms: int | None = None
    """Newest arrival (ms) of an event that linked it or was held in it: when it may expire (`state_expiry.py`).
    None in entries written before it was kept."""

    def touch(self, received_at_ms: int) -> None:
        self.touched_ms = max(self.touched_ms or 0, received_at_ms)

    def hold(self, event_key: str, value: bytes, headers: Headers) -> bool:
        if event_key in self.held:
            return False
        self.held[event_key] = (value, headers)
        return True

    def pack(self) -> bytes:
        held = {k: [_b64(v), [[n, _b64(h)] for n, h in headers]] for k, (v, headers) in self.held.items()}
        data: dict[str, Any] = {"payment": self.payment, "held": held}
        if self.touched_ms is not None:
            data["at"] = self.touched_ms
        return orjson.dumps(data)

    @classmethod
    def unpack(cls, raw: bytes | None) -> AliasEntry:
        if raw is None:
            return cls()
        data = orjson.loads(raw)
        held = {k: (base64.b64decode(v), [(n, base64.b64decode(h)) for n, h in headers])
                for k, (v, headers) in data["held"].items()}
        return cls(data["payment"], held, data.get("at"))


def payment_keys(events: list[PaymentEvent]) -> dict[str, str]:
    """Event key → `<provider>:<payment>` for a whole set of events at once: the reference the
    worker's incremental resolution must reach (tests, rebuilds). An event whose alias is never
    linked stays on the alias, as the worker holds it there."""
    identities = [(event, identify(event)) for event in events]
    links: dict[tuple[str, str], str] = {}
    for event, identity in identities:
        if identity.payment is not None:
            for alias in identity.links:
                links.setdefault((event.provider, alias), identity.payment)
    # an event resolved through an alias links what it proves in turn (a capture named by its refunds)
    pending = [(event, identity) for event, identity in identities if identity.payment is None and identity.links]
    while pending:
        waiting = []
        for event, identity in pending:
            payment = links.get((event.provider, identity.alias or event.payment_id))
            if payment is None:
                waiting.append((event, identity))
                continue
            for alias in identity.links:
                links.setdefault((event.provider, alias), payment)
        if len(waiting) == len(pending):  # an alias nothing links: released under itself (`held_release.py`)
            event, identity = waiting[0]
            alias = identity.alias or event.payment_id
            links.setdefault((event.provider, alias), alias)
        pending = waiting
    keys: dict[str, str] = {}
    for event, identity in identities:
        alias = identity.alias or event.payment_id
        payment = identity.payment or links.get((event.provider, alias), alias)
        keys[event.event_key] = f"{event.provider}:{payment}"
    return keys
