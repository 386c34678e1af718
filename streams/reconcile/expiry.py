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

from streams.reconcile.model import JoinState, WindowSpec
from streams.sweep import SWEEP_EVERY_S, SWEEP_SLICE, Sweeper

__all__ = ["SWEEP_EVERY_S", "SWEEP_SLICE", "Sweeper", "join_state_expired"]


def join_state_expired(state: JoinState, clock_ms: int | None, spec: WindowSpec) -> bool:
    """Whether a payment's join state can go at the partition's event-time `clock_ms`."""
    if clock_ms is None:
        return False
    if state.placements:
        return all(spec.final_at(start) + spec.retention_ms <= clock_ms for _, start in state.placements)
    if state.ledger is not None:
        return state.ledger.expected_ms + 2 * spec.retention_ms <= clock_ms
    return False
