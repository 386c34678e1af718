"""Record builders and the "what the tables must hold" oracle for sink tests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import SinkRecord
from schemas.clock import to_epoch_ms
from schemas.dlq import dlq_headers
from schemas.records import AmountMismatch, PaymentEvent, PaymentState, ReconciliationWindow
from schemas.serde import payment_event_serde, payment_state_serde, reconciliation_serde
from schemas.topics import TopicCatalog

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVENTS = payment_event_serde()
STATES = payment_state_serde()
WINDOWS = reconciliation_serde()


def event(i: int, *, payment: int | None = None, provider: str = "stripe", status: str = "succeeded",
          kind: str = "payment", amount: int | None = 1000, currency: str | None = "USD",
          at: datetime | None = None) -> PaymentEvent:
    when = at or BASE + timedelta(seconds=i)
    return PaymentEvent(
        event_key=f"{provider}:evt_{i}", payment_id=f"pay_{i if payment is None else payment}", provider=provider,
        event_type=f"{kind}.{status}", kind=kind, occurred_at=when, envelope_id=f"env_{i}",
        received_at=when + timedelta(milliseconds=5), status=status, amount_minor=amount, currency=currency,
        provider_status=status, related_ids={"charge": f"ch_{i}"},
    )


def state(payment: int, version: int, *, provider: str = "stripe", status: str = "succeeded",
          amount: int = 1000, captured: int = 0, refunded: int = 0, disputed: int = 0, currency: str | None = "USD",
          created: datetime | None = None, updated: datetime | None = None) -> PaymentState:
    created = created or BASE + timedelta(minutes=payment)
    updated = updated or created + timedelta(seconds=version)
    return PaymentState(
        payment_id=f"pay_{payment}", provider=provider, status=status, created_at=created, updated_at=updated,
        status_at=updated, last_event_key=f"{provider}:evt_{payment}_{version}", version=version,
        amount_minor=amount, captured_minor=captured, refunded_minor=refunded, disputed_minor=disputed,
        currency=currency, flags=["out_of_order_seen"] if version % 2 else [],
    )


def window(provider: str = "stripe", currency: str = "USD", *, start: datetime = BASE, revision: int = 0,
           net: int = 5000, missing: Iterable[str] = (), mismatches: Iterable[tuple[str, int, int]] = (),
           ledger: int = 5000, confirmed: int = 5000, late: int = 0) -> ReconciliationWindow:
    return ReconciliationWindow(
        provider=provider, currency=currency, window_start=start, window_end=start + timedelta(hours=1),
        captured_minor=net, net_minor=net, ledger_expected_minor=ledger, provider_confirmed_minor=confirmed,
        missing_at_provider=list(missing),
        amount_mismatches=[AmountMismatch(payment_id=p, ledger_minor=a, provider_minor=b) for p, a, b in mismatches],
        late_events=late, revision=revision, is_correction=revision > 0,
    )


@dataclass
class Feed:
    """Builds SinkRecords (or producer sends) for one catalog and remembers what the tables must end up holding."""

    catalog: TopicCatalog
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    events: dict[str, PaymentEvent] = field(default_factory=dict)
    payments: dict[tuple[str, str], PaymentState] = field(default_factory=dict)
    windows: dict[tuple[str, str, int], ReconciliationWindow] = field(default_factory=dict)

    def _record(self, topic: str, key: str, value: bytes | None, partition: int = 0,
                headers: tuple[tuple[str, bytes], ...] = ()) -> SinkRecord:
        offset = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = offset + 1
        return SinkRecord(topic, partition, offset, key.encode(), value, headers, to_epoch_ms(BASE))

    def expect_event(self, e: PaymentEvent) -> None:
        self.events.setdefault(e.event_key, e)

    def expect_state(self, s: PaymentState) -> None:
        held = self.payments.get((s.payment_id, s.provider))
        if held is None or s.version > held.version:
            self.payments[(s.payment_id, s.provider)] = s

    def expect_window(self, w: ReconciliationWindow) -> None:
        key = (w.provider, w.currency, to_epoch_ms(w.window_start))
        held = self.windows.get(key)
        if held is None or w.revision >= held.revision:
            self.windows[key] = w

    def event(self, e: PaymentEvent, partition: int = 0) -> SinkRecord:
        self.expect_event(e)
        return self._record(self.catalog.events, e.payment_key, EVENTS.encode(e), partition)

    def state(self, s: PaymentState, partition: int = 0) -> SinkRecord:
        self.expect_state(s)
        return self._record(self.catalog.state, s.payment_key, STATES.encode(s), partition)

    def window(self, w: ReconciliationWindow, partition: int = 0) -> SinkRecord:
        self.expect_window(w)
        return self._record(self.catalog.reconciliation, w.key, WINDOWS.encode(w), partition)

    def raw(self, topic: str, key: str, value: bytes | None, partition: int = 0,
            headers: tuple[tuple[str, bytes], ...] = ()) -> SinkRecord:
        """A record the oracle ignores (bad bytes, tombstones, dead letters)."""
        return self._record(topic, key, value, partition, headers)

    def dead_letter(self, original_offset: int, payload: bytes = b"\x01\x02", stage: str = "normalize",
                    partition: int = 0, failed_at: datetime = BASE) -> SinkRecord:
        headers = tuple(dlq_headers(original_topic=self.catalog.raw, original_partition=0,
                                    original_offset=original_offset, stage=stage, error=ValueError("bad body"),
                                    failed_at=failed_at))
        return self._record(self.catalog.dlq, f"stripe:evt_dl{original_offset}", payload, partition, headers)

    # The oracle, in backend-neutral columns --------------------------------------

    def expected_events(self) -> set[tuple[Any, ...]]:
        return {(e.event_key, e.payment_id, e.provider, e.status, e.amount_minor, e.currency,
                 to_epoch_ms(e.occurred_at)) for e in self.events.values()}

    def expected_payments(self) -> set[tuple[Any, ...]]:
        return {(s.payment_id, s.provider, s.status, s.version, s.amount_minor, s.captured_minor, s.refunded_minor,
                 to_epoch_ms(s.updated_at)) for s in self.payments.values()}

    def expected_windows(self) -> set[tuple[Any, ...]]:
        return {(w.provider, w.currency, to_epoch_ms(w.window_start), w.net_minor, w.revision,
                 len(w.missing_at_provider)) for w in self.windows.values()}


# The same columns as the oracle above, read back from the tables.
EVENTS_SQL = ("SELECT event_key, payment_id, provider, status, amount_minor, currency, occurred_at_ms "
              "FROM payment_events")
PAYMENTS_SQL = ("SELECT payment_id, provider, status, version, amount_minor, captured_minor, refunded_minor, "
                "updated_at_ms FROM payments")
WINDOWS_SQL = ("SELECT provider, currency, window_start_ms, net_minor, revision, missing_count "
               "FROM reconciliation_windows")
