"""Held events that wait too long are released under the id they name.

An event that names only an alias (a Stripe refund or dispute naming only its charge, a PayPal refund or
dispute naming only its capture) waits in the alias's entry for an event that says which payment the
alias belongs to (`identity.py`). If that event never comes (a legacy charge that is its own payment, an
endpoint not subscribed to the charge's own events), the held events would wait until the entry expires,
seen only by a counter and the ops lookup. Once the partition's event-time clock is
`PAYSTREAM_HELD_RELEASE_S` past the newest arrival held in the entry, the state stage links the alias to
itself, through the alias's own state-input partition (so the link is an input record with an offset,
and a crash before it arrives leaves the entry unlinked, to be decided again): the alias is its own
payment, and its held events are applied and emitted under it, as the reference model
(`identity.payment_keys`) keys them (except for a chain no event ever links, whose entries may be
released in either order: see "Identity" in docs/architecture.md). A real link that arrives first makes
the release a no-op; one that arrives after it is a conflict (logged and counted), and the released
events stay on the alias's payment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from schemas.exceptions import DecodeError
from schemas.records import PaymentEvent
from schemas.serde import AvroSerde
from streams.identity import ALIAS_PREFIX, AliasEntry, link_event

__all__ = ["DEFAULT_HELD_RELEASE_S", "RELEASE_KEY_PREFIX", "is_release", "overdue_aliases", "self_link"]

RELEASE_KEY_PREFIX = "release:"
"""Event-key prefix of a self-link made by a release (a link record's is `link:`)."""
DEFAULT_HELD_RELEASE_S = 72 * 3600
"""Stripe and PayPal retry a delivery for up to about three days: a payment's own event that has not come by
then is not coming."""


def overdue_aliases(entries: Iterable[tuple[bytes, bytes]], clock_ms: int,
                    release_ms: int) -> list[tuple[bytes, AliasEntry]]:
    """Alias keys (`<provider>:<alias id>`, without the entry prefix) and entries of unlinked aliases whose
    newest held event arrived `release_ms` or more before `clock_ms`; none when `release_ms` is 0."""
    if release_ms <= 0:
        return []
    overdue = []
    for key, value in entries:
        if not key.startswith(ALIAS_PREFIX):
            continue
        entry = AliasEntry.unpack(value)
        if entry.payment is None and entry.held and entry.touched_ms is not None \
                and entry.touched_ms + release_ms <= clock_ms:
            overdue.append((key[len(ALIAS_PREFIX):], entry))
    return overdue


def self_link(entry: AliasEntry, key: bytes, serde: AvroSerde[PaymentEvent]) -> PaymentEvent | None:
    """The link of alias `key` to itself, dated by one of its held events; None if none can be read (the
    stage dead-letters unreadable held events when a link releases them)."""
    for value, _ in entry.held.values():
        try:
            cause = serde.decode(value)
        except DecodeError:
            continue
        provider, alias = key.decode().split(":", 1)
        return replace(link_event(cause, alias, alias), event_key=f"{RELEASE_KEY_PREFIX}{provider}:{alias}")
    return None


def is_release(link: PaymentEvent) -> bool:
    return link.event_key.startswith(RELEASE_KEY_PREFIX)
