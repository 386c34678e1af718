"""Bounded reconciliation state: what can no longer change a result is deleted.

A window is *final* once its stage's watermark is `WindowSpec.retention_ms` past its close (end +
grace): its first result and corrections are in payments.reconciliation.v1 (and the sink). Its table
entries (the window record and every payment's placement) are deleted, and a placement that still
arrives for a final window is counted and dropped, never turned into a new window. The point up to
which windows are final is kept in the partition's meta record, so it never moves back after a restart.

A payment's join state goes one more retention period later (its windows are final by then, so a late
event for it is dropped by the window stage instead of overwriting a placement whose on-time view it no
longer knows); with no placement, by its ledger date.

Each agent sweeps its own partitions a slice at a time, inside its batches: the agent is the only
writer of its table, so a sweep never races a write, and it only touches the partitions it is
processing records of, never one it does not own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from streams.reconcile.model import JoinState, WindowSpec

__all__ = ["SWEEP_EVERY_S", "SWEEP_SLICE", "Sweeper", "join_state_expired"]

SWEEP_EVERY_S = 5.0
"""Per partition, at most one slice this often (wall time): sweeping costs nothing on the hot path."""
SWEEP_SLICE = 1000
"""Keys looked at per slice: 200 keys/s per partition, a million keys in under 1.5 h (the horizon is months)."""


class Scannable(Protocol):
    def scan_prefix(self, partition: int, prefix: bytes, start: bytes | None = None
                    ) -> Iterator[tuple[bytes, bytes]]: ...


@dataclass
class Sweeper:
    """Walks the keys under `prefix` of each partition a slice at a time, round and round."""

    prefix: bytes
    every_s: float = SWEEP_EVERY_S
    slice_size: int = SWEEP_SLICE
    _cursor: dict[int, bytes] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)

    def next_slice(self, store: Scannable, partition: int, now: float) -> list[tuple[bytes, bytes]]:
        """The next keys of `partition` to look at, or none when its last slice was less than `every_s` ago."""
        if now - self._last.get(partition, -math.inf) < self.every_s:
            return []
        self._last[partition] = now
        found: list[tuple[bytes, bytes]] = []
        for item in store.scan_prefix(partition, self.prefix, self._cursor.get(partition)):
            found.append(item)
            if len(found) >= self.slice_size:
                break
        if len(found) < self.slice_size:
            self._cursor.pop(partition, None)  # reached the end: start over next time
        else:
            self._cursor[partition] = found[-1][0] + b"\x00"  # the smallest key after the last one seen
        return found


def join_state_expired(state: JoinState, clock_ms: int | None, spec: WindowSpec) -> bool:
    """Whether a payment's join state can go at the partition's event-time `clock_ms`."""
    if clock_ms is None:
        return False
    if state.placements:
        return all(spec.final_at(start) + spec.retention_ms <= clock_ms for _, start in state.placements)
    if state.ledger is not None:
        return state.ledger.expected_ms + 2 * spec.retention_ms <= clock_ms
    return False
