"""What the state stage works on: the events bound for payment states, and what one pass changed and must send."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from schemas.records import PaymentEvent, PaymentState
from streams.identity import AliasEntry

__all__ = ["StateBatch", "StateInput"]


@dataclass(slots=True)
class StateInput:
    """One event bound for a payment's state, with what it takes to send it on to the owner."""

    message: Any
    partition: int
    key: bytes
    event: PaymentEvent
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class StateBatch:
    """What one pass of the state stage changed and must send."""

    changed: dict[int, dict[bytes, PaymentState]] = field(default_factory=lambda: defaultdict(dict))
    reemit: dict[int, dict[bytes, PaymentState]] = field(default_factory=lambda: defaultdict(dict))
    aliases: dict[int, dict[bytes, AliasEntry]] = field(default_factory=lambda: defaultdict(dict))
    alias_changed: dict[int, set[bytes]] = field(default_factory=lambda: defaultdict(set))
    applied: dict[int, int] = field(default_factory=dict)
    """Per written partition: the state-input offset the batch brings its applied mark to."""
    replays: int = 0
    received: dict[bytes, Any] = field(default_factory=dict)
    failures: list[tuple[StateInput, BaseException, str | None]] = field(default_factory=list)
    sources: dict[bytes, list[StateInput]] = field(default_factory=lambda: defaultdict(list))
    """The events that changed each payment in this batch: its dead letters if its state cannot be stored."""
    forward: list[StateInput] = field(default_factory=list)
    releases: list[StateInput] = field(default_factory=list)
    """Self-links of overdue held aliases, for their own state-input partitions (`held_release.py`)."""
    refolds: list[StateInput] = field(default_factory=list)
    """Requests to fold again states older money rules folded, for their own state-input partitions
    (`state_refold.py`)."""
    events: list[StateInput] = field(default_factory=list)
    """Resolved events for payments.events.v1 (they were held or keyed by an alias in stage 1)."""
    transitions: Counter[str] = field(default_factory=Counter)
    expired: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    """Per partition: expired entries (None) and re-stamped alias entries, written with the batch."""
