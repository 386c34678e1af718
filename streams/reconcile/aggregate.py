"""Stage 2: keep every window's placements, close windows on the watermark, emit results and corrections.

Runs on the internal placements topic (all windows of a series `<provider>:<currency>`
are in one partition). The window table holds, per partition:

- `c|<series>|<start>|<payment_id>` → the payment's `Placement` (an upsert: a
  redelivered placement overwrites itself, it never adds);
- `w|<series>|<start>` → [closed, revision, digest of the last emitted record];
- `o|<series>|<start>` → present while the window is open;
- the meta key → the last applied offset, every source partition's clock, and the watermark up to
  which windows are final (`expiry.py`: their entries are deleted and late placements dropped).

A window closes when the watermark passes its end plus grace: revision 0 sums the
placements' on-time views; if later changes already arrived, revision 1 follows
at once with the current views. A change to a closed window emits the next
revision, but only when the record it would emit differs from the last one.
Outputs are acknowledged before the table is written, so a crash re-emits at worst
the same revision again (the sink upserts it).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from schemas.records import ReconciliationWindow
from schemas.serde import AvroSerde
from streams.reconcile.expiry import Sweeper
from streams.reconcile.join import META_KEY, DeadLetterSink
from streams.reconcile.model import Contribution, Placement, WindowSpec
from streams.reconcile.store import PartitionStore, Producer, gather, partition_for
from streams.reconcile.windows import SourceClock, decode_batch, digest, summarize, watermark

__all__ = ["ReconcileMetrics", "WindowAggregator"]

log = logging.getLogger("paystream.streams.reconcile")

WindowKey = tuple[str, int]  # (series "<provider>:<currency>", window_start_ms)


class ReconcileMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.windows = Counter("paystream_worker_reconciliation_windows", "Window records emitted (first, correction)",
                               ["kind"], registry=registry)
        self.anomalies = Counter("paystream_worker_reconciliation_anomalies",
                                 "Anomalies in first window records, and late events in corrections", ["type"],
                                 registry=registry)
        self.open_windows = Gauge("paystream_worker_reconciliation_open_windows",
                                  "Windows waiting for the watermark on this worker", registry=registry)
        self.expired = Counter("paystream_worker_reconciliation_expired",
                               "Final windows deleted from the table, and placements dropped because their window "
                               "was final", ["what"], registry=registry)


def _entry_prefix(key: WindowKey) -> bytes:
    return f"c|{key[0]}|{key[1]:015d}|".encode()


def _window_key(key: WindowKey, kind: str = "w") -> bytes:
    return f"{kind}|{key[0]}|{key[1]:015d}".encode()


@dataclass
class _Window:
    closed: bool = False
    revision: int = -1
    digest: str | None = None
    stored_open: bool = False  # an `o|` key exists in the table
    changed: bool = False

    def pack(self) -> bytes:
        return orjson.dumps([self.closed, self.revision, self.digest])


@dataclass
class _Partition:
    applied: int = -1
    sources: dict[int, SourceClock] = field(default_factory=dict)
    final_mark: int | None = None
    """Windows with `spec.final_at(start) <= final_mark` are final; it never moves back."""
    windows: dict[WindowKey, _Window] = field(default_factory=dict)
    entries: dict[WindowKey, dict[str, bytes | None]] = field(default_factory=lambda: defaultdict(dict))
    dirty: set[WindowKey] = field(default_factory=set)

    def pack(self) -> bytes:
        return orjson.dumps({"a": self.applied, "x": self.final_mark,
                             "s": {str(k): [v.clock_ms, v.idle] for k, v in sorted(self.sources.items())}})

    @classmethod
    def unpack(cls, raw: bytes | None) -> _Partition:
        if raw is None:
            return cls()
        data = orjson.loads(raw)
        return cls(data["a"], {int(k): SourceClock(v[0], v[1]) for k, v in data["s"].items()}, data.get("x"))


class WindowAggregator:
    def __init__(self, *, store: PartitionStore, producer: Callable[[], Producer], output_topic: str,
                 sources: int, spec: WindowSpec, serde: AvroSerde[ReconciliationWindow],
                 dead_letters: DeadLetterSink, metrics: ReconcileMetrics | None = None) -> None:
        self.store = store
        self._producer = producer
        self.output_topic = output_topic
        self.sources = sources
        self.spec = spec
        self.serde = serde
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.watermarks: dict[int, int | None] = {}
        self.open_windows: dict[int, int] = {}
        self.emitted = 0
        self.dropped_final = 0
        self.expired_windows = 0
        self.sweeper = Sweeper(prefix=b"w|")

    def _window(self, partition: int, part: _Partition, key: WindowKey) -> _Window | None:
        window = part.windows.get(key)
        if window is None:
            raw = self.store.get(partition, _window_key(key))
            if raw is not None:
                closed, revision, last = orjson.loads(raw)
                window = part.windows[key] = _Window(closed, revision, last, stored_open=not closed)
        return window

    async def process(self, messages: Sequence[Any]) -> None:
        parts: dict[int, _Partition] = {}
        futures: list[Any] = []
        for message in messages:
            partition = message.partition
            part = parts.get(partition)
            if part is None:
                part = parts[partition] = _Partition.unpack(self.store.get(partition, META_KEY))
            if message.offset <= part.applied:
                continue
            part.applied = message.offset
            try:
                batch = decode_batch(message.value)
            except ValueError as exc:
                futures.append(await self.dead_letters.send(message, "reconcile", exc, reason="bad_placement"))
                continue
            for record in batch.placements:
                key: WindowKey = (record.series, record.start_ms)
                if part.final_mark is not None and self.spec.final_at(record.start_ms) <= part.final_mark:
                    self._count_final_drop(record.series, record.start_ms, record.payment_id)
                    continue
                window = self._window(partition, part, key)
                if window is None:
                    if record.packed is None:
                        continue  # left a window this stage never heard of: nothing to undo
                    window = part.windows[key] = _Window(changed=True)
                part.entries[key][record.payment_id] = None if record.packed is None else orjson.dumps(record.packed)
                if window.closed:
                    part.dirty.add(key)
            for tick in batch.ticks:  # after the placements they cover
                old = part.sources.get(tick.source)
                clock = tick.clock_ms if old is None else max(old.clock_ms, tick.clock_ms)
                part.sources[tick.source] = SourceClock(clock, tick.idle)
        for partition, part in parts.items():
            futures.extend(await self._close_and_correct(partition, part))
        await gather(futures)
        writes: list[Any] = []
        for partition, part in parts.items():
            writes.extend(await self.store.write(partition, self._table_items(part)))
        await gather(writes)
        await self._expire(parts)
        if self.metrics is not None:
            self.metrics.open_windows.set(sum(self.open_windows.values()))

    def _count_final_drop(self, series: str, start_ms: int, payment_id: str) -> None:
        self.dropped_final += 1
        if self.metrics is not None:
            self.metrics.expired.labels("late_placement").inc()
        log.warning("placement for a final window dropped (past the retention horizon)",
                    extra={"series": series, "window_start_ms": start_ms, "payment_id": payment_id})

    async def _expire(self, parts: dict[int, _Partition], now: float | None = None) -> None:
        """Delete final windows (`expiry.py`), a slice of window records at a time per partition."""
        now = time.monotonic() if now is None else now
        writes: list[Any] = []
        for partition, part in parts.items():
            if part.final_mark is None:
                continue
            gone: dict[bytes, bytes | None] = {}
            for raw_key, _ in self.sweeper.next_slice(self.store, partition, now):
                series, _, start = raw_key[2:].decode().rpartition("|")
                key: WindowKey = (series, int(start))
                if self.spec.final_at(key[1]) > part.final_mark:
                    continue
                gone[raw_key] = None
                gone[_window_key(key, "o")] = None
                gone.update((entry, None) for entry, _ in self.store.scan_prefix(partition, _entry_prefix(key)))
                self.expired_windows += 1
                if self.metrics is not None:
                    self.metrics.expired.labels("window").inc()
            if gone:
                writes.extend(await self.store.write(partition, gone))
        await gather(writes)

    def _open_keys(self, partition: int, part: _Partition) -> set[WindowKey]:
        keys = {key for key, window in part.windows.items() if not window.closed}
        for raw, _ in self.store.scan_prefix(partition, b"o|"):
            series, _, start = raw[2:].decode().rpartition("|")
            keys.add((series, int(start)))
        return keys

    async def _close_and_correct(self, partition: int, part: _Partition) -> list[Any]:
        mark = watermark(part.sources, self.sources)
        self.watermarks[partition] = mark
        if mark is not None and (part.final_mark is None or mark > part.final_mark):
            part.final_mark = mark
        futures: list[Any] = []
        open_keys = self._open_keys(partition, part)
        for key in sorted(open_keys):
            if mark is None or self.spec.closes_at(key[1]) > mark:
                continue
            window = self._window(partition, part, key)
            assert window is not None
            placements = dict(self._placements(partition, part, key))
            first = self._summarize(key, ((pid, p.ontime) for pid, p in placements.items()), 0)
            window.closed, window.changed, window.revision, window.digest = True, True, 0, digest(first)
            futures.append(await self._emit(first))
            futures.extend(await self._correct(key, window, placements))
            part.dirty.discard(key)
            open_keys.discard(key)
        for key in sorted(part.dirty):
            window = self._window(partition, part, key)
            assert window is not None
            futures.extend(await self._correct(key, window, dict(self._placements(partition, part, key))))
        self.open_windows[partition] = len(open_keys)
        return futures

    async def _correct(self, key: WindowKey, window: _Window, placements: dict[str, Placement]) -> list[Any]:
        late = sum(p.late for p in placements.values())
        current = self._summarize(key, ((pid, p.current) for pid, p in placements.items()), late)
        current_digest = digest(current)
        if current_digest == window.digest:
            return []
        window.revision += 1
        window.digest, window.changed = current_digest, True
        return [await self._emit(replace(current, revision=window.revision, is_correction=True))]

    def _summarize(self, key: WindowKey, views: Iterator[tuple[str, Contribution | None]],
                   late: int) -> ReconciliationWindow:
        provider, _, currency = key[0].partition(":")
        return summarize(provider, currency, key[1], self.spec, ((pid, c) for pid, c in views if c is not None), late)

    def stored_placements(self, series: str, start_ms: int) -> list[tuple[str, Placement]]:
        """A window's payments as this worker's table holds them (the ops drill-down; the caller
        makes sure this worker is the active owner of the series' partition)."""
        partition = partition_for(series.encode(), self.sources)
        prefix = _entry_prefix((series, start_ms))
        return [(raw[len(prefix):].decode(), Placement.unpack(orjson.loads(value)))
                for raw, value in self.store.scan_prefix(partition, prefix)]

    def _placements(self, partition: int, part: _Partition, key: WindowKey) -> Iterator[tuple[str, Placement]]:
        prefix = _entry_prefix(key)
        pending = part.entries.get(key, {})
        for raw_key, value in self.store.scan_prefix(partition, prefix):
            payment_id = raw_key[len(prefix):].decode()
            if payment_id not in pending:
                yield payment_id, Placement.unpack(orjson.loads(value))
        for payment_id, pending_value in pending.items():
            if pending_value is not None:
                yield payment_id, Placement.unpack(orjson.loads(pending_value))

    async def _emit(self, window: ReconciliationWindow) -> Any:
        self.emitted += 1
        if self.metrics is not None:
            if window.is_correction:
                self.metrics.windows.labels("correction").inc()
                self.metrics.anomalies.labels("late_event").inc(window.late_events)
            else:
                self.metrics.windows.labels("first").inc()
                self.metrics.anomalies.labels("missing_at_provider").inc(len(window.missing_at_provider))
                self.metrics.anomalies.labels("unexpected_at_provider").inc(len(window.unexpected_at_provider))
                self.metrics.anomalies.labels("amount_mismatch").inc(len(window.amount_mismatches))
        log.info("reconciliation window emitted", extra={"key": window.key, "revision": window.revision})
        return await self._producer().send(self.output_topic, window.key.encode(), self.serde.encode(window),
                                           None, None, None)

    def _table_items(self, part: _Partition) -> dict[bytes, bytes | None]:
        items: dict[bytes, bytes | None] = {}
        for key, pending in part.entries.items():
            prefix = _entry_prefix(key)
            for payment_id, value in pending.items():
                items[prefix + payment_id.encode()] = value
        for key, window in part.windows.items():
            if window.changed:
                items[_window_key(key)] = window.pack()
            if window.closed and window.stored_open:
                items[_window_key(key, "o")] = None
            elif not window.closed and not window.stored_open:
                items[_window_key(key, "o")] = b"1"
        items[META_KEY] = part.pack()
        return items
