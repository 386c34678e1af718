"""The emitted windows, as every worker's ops views see them: a follower of payments.reconciliation.v1.

Each worker closes only the windows of its own partitions; the ops views answer
for all of them, so each worker reads the whole (compacted, small: one record per
provider, currency and hour) output topic from the beginning, with a plain
aiokafka consumer outside the consumer group, and keeps the highest revision per key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from paystream.core.topic_reader import follow as follow_topic
from schemas.exceptions import DecodeError
from schemas.records import ReconciliationWindow
from schemas.serde import AvroSerde

__all__ = ["WindowFeed"]

log = logging.getLogger("paystream.streams.reconcile")


class WindowFeed:
    def __init__(self, serde: AvroSerde[ReconciliationWindow]) -> None:
        self.serde = serde
        self.windows: dict[str, ReconciliationWindow] = {}
        self.records = 0
        self.undecodable = 0

    def add(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            window = self.serde.decode(value)
        except DecodeError:
            self.undecodable += 1
            return
        self.records += 1
        known = self.windows.get(window.key)
        if known is None or window.revision >= known.revision:
            self.windows[window.key] = window

    def select(self, *, provider: str | None = None, currency: str | None = None,
               since: datetime | None = None) -> list[ReconciliationWindow]:
        chosen = [w for w in self.windows.values()
                  if (provider is None or w.provider == provider) and (currency is None or w.currency == currency)
                  and (since is None or w.window_start >= since)]
        return sorted(chosen, key=lambda w: (w.window_start, w.provider, w.currency))

    def latest_per_series(self) -> list[ReconciliationWindow]:
        latest: dict[tuple[str, str], ReconciliationWindow] = {}
        for window in self.windows.values():
            series = (window.provider, window.currency)
            if series not in latest or window.window_start > latest[series].window_start:
                latest[series] = window
        return sorted(latest.values(), key=lambda w: (w.provider, w.currency))

    async def follow(self, bootstrap: str, topic: str, partitions: Iterable[int], **options: Any) -> None:
        """Read `topic` from the beginning until cancelled."""
        try:
            async for record in follow_topic(bootstrap, topic, partitions, **options):
                self.add(record.value)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reconciliation feed stopped")
            raise
