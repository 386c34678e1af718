"""Window arithmetic, as pure functions: summing placements, the watermark, and the internal records.

The join (stage 1) sends, per batch and per partition of the internal placements
topic, one record (or a few, for a large batch) holding:

- placements: one payment's `Placement` in one window (None when it left the
  window), for the series `<provider>:<currency>` that this partition owns — every
  window of a series lives in one partition of stage 2;
- ticks after them: "source partition S has reached event time T" (or is idle).
  Every partition gets the tick of every source that advanced.

One record per partition and batch instead of one per placement: producer sends
cost more than everything else stage 1 does per payment. A window closes when the
watermark — the lowest event time over all source partitions that are not idle —
has passed its end plus grace.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.clock import from_epoch_ms
from schemas.lifecycle import Status
from schemas.records import AmountMismatch, ReconciliationWindow
from streams.reconcile.model import Contribution, WindowSpec

__all__ = [
    "MAX_PLACEMENTS_PER_RECORD",
    "Batch",
    "PlacementRecord",
    "SourceClock",
    "Tick",
    "anomaly_of",
    "decode_batch",
    "digest",
    "drilldown",
    "encode_batch",
    "summarize",
    "watermark",
]

MAX_PLACEMENTS_PER_RECORD = 500
"""Keeps an internal record far below the broker's 1 MB message limit."""


@dataclass(frozen=True, slots=True)
class PlacementRecord:
    series: str
    start_ms: int
    payment_id: str
    packed: list[Any] | None
    """`Placement.pack()` as sent; stage 2 stores it without building objects."""


@dataclass(frozen=True, slots=True)
class Tick:
    source: int
    clock_ms: int
    idle: bool


@dataclass(frozen=True, slots=True)
class Batch:
    placements: list[PlacementRecord] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SourceClock:
    clock_ms: int
    idle: bool


def encode_batch(placements: Iterable[tuple[str, int, str, list[Any] | None]], ticks: Iterable[Tick]) -> bytes:
    return orjson.dumps(["b", list(placements), [[t.source, t.clock_ms, t.idle] for t in ticks]])


def _placement(item: Any) -> PlacementRecord:
    series, start, payment_id, packed = item
    if not (isinstance(series, str) and isinstance(start, int) and isinstance(payment_id, str)):
        raise TypeError("placement fields")
    if packed is not None and not (isinstance(packed, list) and len(packed) == 3):
        raise TypeError("packed placement")
    return PlacementRecord(series, start, payment_id, packed)


def decode_batch(data: bytes) -> Batch:
    """Raises ValueError on anything that is not a batch record."""
    try:
        value: Any = orjson.loads(data)
        kind, placements, ticks = value
        if kind != "b":
            raise TypeError(f"record type {kind!r}")
        return Batch([_placement(item) for item in placements],
                     [Tick(int(source), int(clock), bool(idle)) for source, clock, idle in ticks])
    except (ValueError, TypeError, IndexError, KeyError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"not a reconciliation record: {exc}") from exc


def watermark(sources: Mapping[int, SourceClock], count: int) -> int | None:
    """The event time every source partition has passed, or None while one has never reported.

    Idle sources (nothing to read for a while) do not hold the others back; when all
    are idle, the furthest clock counts.
    """
    clocks: list[int] = []
    for source in range(count):
        clock = sources.get(source)
        if clock is None:
            return None
        if not clock.idle:
            clocks.append(clock.clock_ms)
    if clocks:
        return min(clocks)
    return max(c.clock_ms for c in sources.values()) if sources else None


MISSING, UNEXPECTED, MISMATCH = "missing_at_provider", "unexpected_at_provider", "amount_mismatches"


def anomaly_of(c: Contribution) -> str | None:
    """Which anomaly list a payment's contribution puts it on, if any (the window record and the drill-down
    both ask here, so they cannot disagree)."""
    if c.expected_minor is not None and c.confirmed_minor is None:
        return MISSING
    if c.expected_minor is None and c.confirmed_minor is not None:
        return UNEXPECTED
    if c.expected_minor is not None and c.confirmed_minor is not None and c.expected_minor != c.confirmed_minor:
        return MISMATCH
    return None


def drilldown(contributions: Iterable[tuple[str, Contribution]]) -> dict[str, list[dict[str, Any]]]:
    """The anomalous payments of a window with both amounts and the ledger's merchant reference."""
    out: dict[str, list[dict[str, Any]]] = {MISSING: [], UNEXPECTED: [], MISMATCH: []}
    for payment_id, c in sorted(contributions, key=lambda item: item[0]):
        kind = anomaly_of(c)
        if kind is not None:
            out[kind].append({"payment_id": payment_id, "ledger_minor": c.expected_minor,
                              "provider_minor": c.confirmed_minor, "status": c.status,
                              "merchant_reference": c.merchant_reference})
    return out


def summarize(provider: str, currency: str, start_ms: int, spec: WindowSpec,
              contributions: Iterable[tuple[str, Contribution]], late_events: int = 0) -> ReconciliationWindow:
    """One window's record from its payments' contributions (revision 0; the caller sets corrections)."""
    counts: dict[str, int] = {}
    sums: dict[str, int] = {}
    captured = refunded = disputed = failed = expected_total = confirmed_total = 0
    missing: list[str] = []
    unexpected: list[str] = []
    mismatches: list[AmountMismatch] = []
    for payment_id, c in sorted(contributions, key=lambda item: item[0]):
        if c.status is not None:
            counts[c.status] = counts.get(c.status, 0) + 1
            sums[c.status] = sums.get(c.status, 0) + c.amount_minor
            if c.status == Status.FAILED.value:
                failed += 1
        captured += c.captured_minor
        refunded += c.refunded_minor
        disputed += c.disputed_minor
        expected_total += c.expected_minor or 0
        confirmed_total += c.confirmed_minor or 0
        kind = anomaly_of(c)
        if kind == MISSING:
            missing.append(payment_id)
        elif kind == UNEXPECTED:
            unexpected.append(payment_id)
        elif kind == MISMATCH and c.expected_minor is not None and c.confirmed_minor is not None:
            mismatches.append(AmountMismatch(payment_id=payment_id, ledger_minor=c.expected_minor,
                                             provider_minor=c.confirmed_minor))
    return ReconciliationWindow(
        provider=provider, currency=currency, window_start=from_epoch_ms(start_ms),
        window_end=from_epoch_ms(start_ms + spec.size_ms), counts_by_status=counts, sums_by_status=sums,
        captured_minor=captured, refunded_minor=refunded, disputed_minor=disputed, failed_count=failed,
        net_minor=captured - refunded - disputed, ledger_expected_minor=expected_total,
        provider_confirmed_minor=confirmed_total, missing_at_provider=missing, unexpected_at_provider=unexpected,
        amount_mismatches=mismatches, late_events=late_events,
    )


def digest(window: ReconciliationWindow) -> str:
    """What a window says, without its revision: a correction is emitted only when this changes."""
    body = window.to_avro()
    body.pop("revision")
    body.pop("is_correction")
    return hashlib.blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()
