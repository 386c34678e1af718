"""Windowed reconciliation against the merchant's ledger (issue 4; being built)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.app import Worker

__all__ = ["register_reconciliation"]


def register_reconciliation(worker: Worker) -> Any:
    """Register the reconciliation agents, tables and views on `worker.app`; returns a handle for views/tests."""
    return None
