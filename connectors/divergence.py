"""The payments guard's second half: notice a state that disagrees with the stored row, not only an older one.

A payment's state is a pure fold over the set of events applied to it, and its version is the size
of that set (`streams/state.py`). Two states of one payment are consistent when one's events include
the other's; the version guard (`payments.version < excluded.version`) then keeps the right one. When
neither includes the other, the pipeline has produced two histories for one payment (a stale restore,
a lost write): the guard would silently keep whichever is larger. This module decides, per flush,
what to write and what to flag:

- the row keeps what the guard keeps (the higher version, then the higher fold revision; the stored
  row on a tie);
- `diverged_events` on the row lists every event some state of the payment claimed that the kept
  state lacks (NULL when there is none); a later state that covers them clears it;
- each divergence is returned as a `Divergence` (the sink counts and logs it: payment, both versions,
  how many events each side lacks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import orjson

from connectors.tables import PAYMENTS, Row

__all__ = ["Divergence", "Stored", "Verdicts", "check_payments", "decode_keys", "encode_keys", "flag_sql",
           "load_stored"]

_ID, _PROVIDER = PAYMENTS.columns.index("payment_id"), PAYMENTS.columns.index("provider")
_VERSION, _INCARNATION = PAYMENTS.columns.index("version"), PAYMENTS.columns.index("incarnation")
_EVENTS, _DIVERGED = PAYMENTS.columns.index("event_keys"), PAYMENTS.columns.index("diverged_events")
_REVISION = PAYMENTS.columns.index("fold_revision")

PaymentKey = tuple[str, str]


def encode_keys(keys: Sequence[str] | set[str] | frozenset[str]) -> str:
    return orjson.dumps(sorted(keys)).decode()


def decode_keys(text: str | None) -> frozenset[str] | None:
    """None for a row written before the sink stored event keys (nothing to compare against)."""
    if not text:
        return None
    return frozenset(orjson.loads(text))


@dataclass(frozen=True, slots=True)
class Stored:
    """What the check needs of a stored `payments` row."""

    version: int
    events: frozenset[str] | None
    diverged: frozenset[str]
    incarnation: str
    fold_revision: int


@dataclass(frozen=True, slots=True)
class Divergence:
    payment_id: str
    provider: str
    stored_version: int
    incoming_version: int
    only_stored: int
    """Events the stored (or earlier) state has and the incoming one lacks."""
    only_incoming: int


@dataclass(slots=True)
class Verdicts:
    divergences: list[Divergence]
    flag_stored: dict[PaymentKey, str | None]
    """Rows the guard keeps as they are, whose `diverged_events` must change (JSON text or None)."""


@dataclass(slots=True)
class _Current:
    version: int
    events: frozenset[str] | None
    known: set[str]
    incoming: bool
    """The state the guard keeps comes from this batch (else it is the stored row)."""
    incarnation: str
    fold_revision: int


def check_payments(rows: list[Row], stored: Mapping[PaymentKey, Stored], incarnation: str) -> Verdicts:
    """Compare each incoming payment row (in batch order) with the state it meets; set `diverged_events`
    on the incoming rows (replacing them in `rows`) and return the divergences and the stored rows to flag."""
    current = {key: _Current(s.version, s.events, set(s.diverged), False, s.incarnation, s.fold_revision)
               for key, s in stored.items()}
    verdicts = Verdicts([], {})
    positions: dict[PaymentKey, list[int]] = {}
    for index, row in enumerate(rows):
        key: PaymentKey = (row[_ID], row[_PROVIDER])
        positions.setdefault(key, []).append(index)
        events = decode_keys(row[_EVENTS])
        held = current.get(key)
        if held is None or held.incarnation != incarnation:  # first sight, or versions restarted on a new broker
            current[key] = _Current(row[_VERSION], events, set(), True, incarnation, row[_REVISION])
            continue
        if events is not None and held.events is not None and not (events <= held.events or held.events <= events):
            verdicts.divergences.append(Divergence(row[_ID], row[_PROVIDER], held.version, row[_VERSION],
                                                   len(held.events - events), len(events - held.events)))
        held.known |= (events or frozenset()) | (held.events or frozenset())
        if (row[_VERSION], row[_REVISION]) > (held.version, held.fold_revision):  # what the guard lets through
            held.version, held.fold_revision, held.events, held.incoming = row[_VERSION], row[_REVISION], events, True
    for key, indexes in positions.items():
        held = current[key]
        missing = held.known - held.events if held.events is not None else set()
        text = encode_keys(missing) if missing else None
        if held.incoming:
            for index in indexes:
                row = rows[index]
                rows[index] = (*row[:_DIVERGED], text, *row[_DIVERGED + 1:])
        elif text != (encode_keys(stored[key].diverged) if stored[key].diverged else None):
            verdicts.flag_stored[key] = text
    return verdicts


_CHUNK = 500
_STORED_COLUMNS = "payment_id, provider, version, event_keys, diverged_events, incarnation, fold_revision"


def load_stored(query: Callable[[str, Sequence[object]], list[Row]], placeholder: str,
                keys: set[PaymentKey]) -> dict[PaymentKey, Stored]:
    """The stored rows of these payments (one query per 500 payment ids)."""
    ids = sorted({payment_id for payment_id, _ in keys})
    found: dict[PaymentKey, Stored] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        marks = ", ".join([placeholder] * len(chunk))
        sql = f"SELECT {_STORED_COLUMNS} FROM payments WHERE payment_id IN ({marks})"  # noqa: S608 - placeholders
        for payment_id, provider, version, events, diverged, incarnation, revision in query(sql, chunk):
            if (payment_id, provider) in keys:
                found[(payment_id, provider)] = Stored(version, decode_keys(events),
                                                       decode_keys(diverged) or frozenset(), incarnation, revision)
    return found


def flag_sql(placeholder: str) -> str:
    return (f"UPDATE payments SET diverged_events = {placeholder} "  # noqa: S608 - placeholders only
            f"WHERE payment_id = {placeholder} AND provider = {placeholder}")
