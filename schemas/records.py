"""Python mirrors of the Avro records in `schemas/avro/`.

Each record is a slotted dataclass whose field names equal the Avro field names,
so `to_avro()` / `from_avro()` are plain dict conversions and the `.avsc` file
stays the single source of truth for types and defaults. Records are not frozen
(frozen dataclasses build through `object.__setattr__`, a third of the decode
time in the worker's hot path) but are treated as values: never mutate one.
Timestamps are timezone-aware UTC `datetime`s (Avro `timestamp-millis`); money is
always an integer amount in minor units next to an upper-case ISO 4217 currency.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar, Self

__all__ = [
    "AmountMismatch",
    "HistoryEntry",
    "LedgerEntry",
    "MoneyPart",
    "PaymentEvent",
    "PaymentState",
    "ReconciliationWindow",
    "Record",
    "WebhookEnvelope",
]


class Record:
    """Shared dict conversion; `AVRO_NAME` names the `.avsc` file it mirrors."""

    AVRO_NAME: ClassVar[str]
    __slots__ = ()

    def to_avro(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_avro(cls, data: dict[str, Any]) -> Self:
        return cls(**data)


@dataclass(slots=True, kw_only=True)
class WebhookEnvelope(Record):
    AVRO_NAME: ClassVar[str] = "webhook_envelope"

    envelope_id: str
    provider: str
    source: str
    provider_event_id: str
    event_type: str
    received_at: datetime
    verified_by: str
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    provider_created_at: datetime | None = None
    livemode: bool | None = None
    traceparent: str | None = None

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.provider_event_id}"


@dataclass(slots=True, frozen=True)
class MoneyPart:
    """One refund, reversal, dispute, capture or authorization as one event states it.

    Statuses are canonical per kind: refund and reversal pending|succeeded|failed|canceled,
    dispute open|inquiry|won|lost|closed, capture pending|succeeded|failed, authorization
    open|captured|voided. `id` is empty when the provider gives the part none.
    """

    kind: str
    id: str
    amount_minor: int
    status: str

    def to_avro(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "amount_minor": self.amount_minor, "status": self.status}


def _parts(data: list[Any]) -> list[MoneyPart]:
    return [p if isinstance(p, MoneyPart) else MoneyPart(**p) for p in data]


@dataclass(slots=True, kw_only=True)
class PaymentEvent(Record):
    AVRO_NAME: ClassVar[str] = "payment_event"

    event_key: str
    payment_id: str
    provider: str
    event_type: str
    kind: str
    occurred_at: datetime
    envelope_id: str
    received_at: datetime
    status: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    provider_status: str | None = None
    related_ids: dict[str, str] = field(default_factory=dict)
    refunded_total_minor: int | None = None
    parts: list[MoneyPart] = field(default_factory=list)
    livemode: bool | None = None
    traceparent: str | None = None

    @property
    def payment_key(self) -> str:
        return f"{self.provider}:{self.payment_id}"

    def to_avro(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["parts"] = [p.to_avro() for p in self.parts]
        return data

    @classmethod
    def from_avro(cls, data: dict[str, Any]) -> Self:
        values = dict(data)
        values["parts"] = _parts(data.get("parts", []))
        return cls(**values)


@dataclass(slots=True, kw_only=True)
class HistoryEntry:
    """One applied event's facts: everything the payment fold (`streams/fold.py`) reads."""

    event_key: str
    event_type: str
    kind: str
    occurred_at: datetime
    moved_status: bool = False
    status: str | None = None
    amount_minor: int | None = None
    received_at: datetime | None = None
    currency: str | None = None
    related_ids: dict[str, str] = field(default_factory=dict)
    refunded_total_minor: int | None = None
    parts: list[MoneyPart] = field(default_factory=list)

    def to_avro(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["parts"] = [p.to_avro() for p in self.parts]
        return data

    @classmethod
    def from_avro(cls, data: dict[str, Any]) -> HistoryEntry:
        values = dict(data)
        values["parts"] = _parts(data.get("parts", []))
        return cls(**values)


@dataclass(slots=True, kw_only=True)
class PaymentState(Record):
    AVRO_NAME: ClassVar[str] = "payment_state"

    payment_id: str
    provider: str
    status: str
    created_at: datetime
    updated_at: datetime
    status_at: datetime
    last_event_key: str
    version: int
    fold_revision: int = 0
    """The money rules that folded this state (`streams.fold.FOLD_REVISION`); 0 before revisions existed."""
    amount_minor: int | None = None
    captured_minor: int = 0
    refunded_minor: int = 0
    disputed_minor: int = 0
    authorized_minor: int = 0
    refund_pending_minor: int = 0
    dispute_status: str | None = None
    dispute_count: int = 0
    refund_states: dict[str, str] = field(default_factory=dict)
    disputes: dict[str, int] = field(default_factory=dict)
    dispute_states: dict[str, str] = field(default_factory=dict)
    currency: str | None = None
    flags: list[str] = field(default_factory=list)
    refunds: dict[str, int] = field(default_factory=dict)
    ignored_events: list[str] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    traceparent: str | None = None

    @property
    def payment_key(self) -> str:
        return f"{self.provider}:{self.payment_id}"

    def to_avro(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["history"] = [h.to_avro() for h in self.history]
        return data

    @classmethod
    def from_avro(cls, data: dict[str, Any]) -> Self:
        values = dict(data)
        values["history"] = [HistoryEntry.from_avro(h) for h in data.get("history", [])]
        return cls(**values)


@dataclass(slots=True, kw_only=True)
class LedgerEntry(Record):
    AVRO_NAME: ClassVar[str] = "ledger_entry"

    payment_id: str
    provider: str
    amount_minor: int
    currency: str
    expected_at: datetime
    merchant_reference: str | None = None

    @property
    def payment_key(self) -> str:
        return f"{self.provider}:{self.payment_id}"


@dataclass(slots=True, kw_only=True)
class AmountMismatch:
    payment_id: str
    ledger_minor: int
    provider_minor: int


@dataclass(slots=True, kw_only=True)
class ReconciliationWindow(Record):
    AVRO_NAME: ClassVar[str] = "reconciliation_window"

    provider: str
    currency: str
    window_start: datetime
    window_end: datetime
    counts_by_status: dict[str, int] = field(default_factory=dict)
    sums_by_status: dict[str, int] = field(default_factory=dict)
    captured_minor: int = 0
    refunded_minor: int = 0
    disputed_minor: int = 0
    failed_count: int = 0
    net_minor: int = 0
    ledger_expected_minor: int = 0
    provider_confirmed_minor: int = 0
    missing_at_provider: list[str] = field(default_factory=list)
    unexpected_at_provider: list[str] = field(default_factory=list)
    amount_mismatches: list[AmountMismatch] = field(default_factory=list)
    late_events: int = 0
    is_correction: bool = False
    revision: int = 0

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.currency}:{self.window_start.isoformat()}"

    def to_avro(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["amount_mismatches"] = [
            {"payment_id": m.payment_id, "ledger_minor": m.ledger_minor, "provider_minor": m.provider_minor}
            for m in self.amount_mismatches
        ]
        return data

    @classmethod
    def from_avro(cls, data: dict[str, Any]) -> Self:
        values = dict(data)
        values["amount_mismatches"] = [AmountMismatch(**m) for m in data.get("amount_mismatches", [])]
        return cls(**values)
