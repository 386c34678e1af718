"""Bounded payment state: a payment nobody has heard of for the retention horizon leaves the worker's table.

Without this the state table (and its changelog, which a new worker restores in full) grows with every
payment ever seen. A payment's entry goes once the partition's clock is `PAYSTREAM_STATE_RETENTION_S`
past its last event (default two years: longer than the providers' refund and dispute windows); an
alias entry goes once it has been untouched that long. The clock is event time: the newest
`received_at` the partition has applied, so a replay of old data or a quiet partition expires nothing.

The state agent sweeps inside its own batches, a slice of each partition it is applying events to
(`reconcile/expiry.py`'s `Sweeper`): it is the only writer of the table, so a sweep never races a
write, and it only ever touches partitions it owns and has restored. Deletes go to the changelog as
tombstones, so a worker that restores the partition later does not bring the entries back. The sink's
`payments` rows stay: they are the analysts' record, not the worker's working set.

Known limit: an event for a payment whose entry is gone starts a new state (version 1). The sink keeps
the stored row (its version is higher) and flags the row's `diverged_events`, so it is visible, not silent.

The states a slice keeps are returned decoded, so the stage can ask, without decoding them twice, for those an
older release's money rules folded to be folded again (`state_refold.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from schemas.exceptions import DecodeError
from schemas.records import PaymentState
from schemas.serde import AvroSerde
from streams.applied import APPLIED_KEY
from streams.identity import ALIAS_PREFIX, AliasEntry

__all__ = ["DEFAULT_RETENTION_S", "SWEEP_EVERY_S", "SWEEP_SLICE", "SliceVerdict", "expired_keys", "last_activity_ms",
           "to_ms"]

DEFAULT_RETENTION_S = 730 * 86_400
SWEEP_EVERY_S = 3.0
"""Per partition, one slice this often: a slice decodes up to `SWEEP_SLICE` states, so the pace is kept low."""
SWEEP_SLICE = 50
"""About 17 keys/s per partition: a million keys per partition in under a day; the horizon is years. Small slices
often, not big ones rarely: 500 states every 30 s put a ~0.5-1 s stall 30 s into every bench-e2e run on Apache Kafka
(p99 640-855 ms; 302 and 341 ms with the sweep off, 2026-12-06), and each slice holds up the batch it runs in."""


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def last_activity_ms(state: PaymentState) -> int:
    """When the payment last heard of: its newest event's arrival (or occurrence, for events without one)."""
    moments = [to_ms(h.received_at or h.occurred_at) for h in state.history]
    return max([*moments, to_ms(state.updated_at)])


class SliceVerdict(NamedTuple):
    writes: dict[bytes, bytes | None]
    """Deletes (None) for expired entries, and re-stamped alias entries."""
    counts: dict[str, int]
    """Entries deleted, per kind (payment, alias)."""
    kept: dict[bytes, PaymentState]
    """The payment states the slice keeps, decoded."""


def expired_keys(entries: Iterable[tuple[bytes, bytes]], clock_ms: int, retention_ms: int,
                 serde: AvroSerde[PaymentState]) -> SliceVerdict:
    """What to write for a slice of the table: deletes for expired entries, and a first-seen stamp for alias
    entries written before entries carried one (they expire one retention after the sweep first sees them).
    An unreadable state is left alone (and not in `kept`): the state stage dead-letters the events that meet
    it, and deleting it would hide that."""
    writes: dict[bytes, bytes | None] = {}
    counts = {"payment": 0, "alias": 0}
    kept: dict[bytes, PaymentState] = {}
    for key, value in entries:
        if key == APPLIED_KEY:
            continue
        if key.startswith(ALIAS_PREFIX):
            entry = AliasEntry.unpack(value)
            if entry.touched_ms is None:
                entry.touched_ms = clock_ms
                writes[key] = entry.pack()
            elif entry.touched_ms + retention_ms <= clock_ms:
                writes[key] = None
                counts["alias"] += 1
            continue
        if key.startswith(b"\x00"):
            continue  # other bookkeeping: not a payment
        try:
            state = serde.decode(value)
        except DecodeError:
            continue
        if last_activity_ms(state) + retention_ms <= clock_ms:
            writes[key] = None
            counts["payment"] += 1
        else:
            kept[key] = state
    return SliceVerdict(writes, counts, kept)
