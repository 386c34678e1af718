"""Helpers shared by the normalizer tests: fixture payloads and the fields a test asserts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.records import PaymentEvent

PAYLOADS = Path(__file__).resolve().parents[2] / "fixtures" / "payloads"

CORE_FIELDS = (
    "payment_id",
    "kind",
    "status",
    "amount_minor",
    "currency",
    "occurred_at",
    "provider_status",
    "related_ids",
    "refunded_total_minor",
)


def raw(name: str) -> bytes:
    """Exact bytes of a payload file (`built/...` for the hand-built ones)."""
    return (PAYLOADS / name).read_bytes()


def doc(name: str) -> dict[str, Any]:
    """A payload as a mutable dict, for variants of a real payload."""
    value = json.loads(raw(name))
    assert isinstance(value, dict)
    return value


def core(event: PaymentEvent) -> dict[str, Any]:
    """The mapped fields of an event, for one exact `==` per test."""
    return {name: getattr(event, name) for name in CORE_FIELDS}
