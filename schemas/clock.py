"""Millisecond UTC time, the precision of every Avro `timestamp-millis` field."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = ["EPOCH", "from_epoch_ms", "from_epoch_s", "now_ms", "to_epoch_ms"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def from_epoch_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def from_epoch_s(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def to_epoch_ms(value: datetime) -> int:
    """Whole milliseconds since the epoch (exact integer arithmetic, floors)."""
    return (value - EPOCH) // _ONE_MS


def now_ms() -> datetime:
    """The current time truncated to whole milliseconds, so it survives an Avro round trip."""
    return from_epoch_ms(time.time_ns() // 1_000_000)
