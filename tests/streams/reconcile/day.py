"""A scripted business day with its answer kept by hand, payment by payment.

Each payment is written from a story ("matched", "missing", "refund after grace",
…); the story also says, directly, what the payment must add to its window in the
first result and in the final one. The books are summed here without any of
`streams.reconcile`, so the test compares the implementation against the script.

Publishing order matters and is part of the script:
1. `ledger` (wait until the worker has read it);
2. `stream`: provider events in time order, except the "within grace" ones, which
   come a few minutes after their window ended (still inside the grace);
3. `sweep`: one event per events partition the next morning, so every partition's
   clock passes the last window's end + grace;
4. (after every first result is out) `late`: events and ledger entries after grace.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.records import AmountMismatch, LedgerEntry, PaymentEvent, ReconciliationWindow
from tests.streams.reconcile.support import at, partition_for

HOUR = timedelta(hours=1)
GRACE = timedelta(minutes=10)
EVENTS_STRIPE = {"start": ("payment_intent.created", "created"), "confirm": ("payment_intent.succeeded", "succeeded"),
                 "fail": ("payment_intent.payment_failed", "failed")}
EVENTS_PAYPAL = {"start": ("PAYMENT.CAPTURE.PENDING", "processing"), "confirm": ("PAYMENT.CAPTURE.COMPLETED",
                                                                               "succeeded"),
                 "fail": ("PAYMENT.CAPTURE.DECLINED", "failed")}


def event(provider: str, payment_id: str, step: str, amount: int, currency: str, when: datetime,
          refund: int | None = None) -> PaymentEvent:
    if step == "refund":
        event_type = "refund.created" if provider == "stripe" else "PAYMENT.CAPTURE.REFUNDED"
        refund_id = f"re_{uuid.uuid4().hex[:10]}"
        return PaymentEvent(event_key=f"{provider}:evt_{uuid.uuid4().hex}", payment_id=payment_id, provider=provider,
                            event_type=event_type, kind="refund", status="partially_refunded", amount_minor=refund,
                            currency=currency, occurred_at=when, received_at=when, envelope_id=str(uuid.uuid4()),
                            related_ids={"refund": refund_id},
                            refunded_total_minor=refund if provider == "paypal" else None)
    event_type, status = (EVENTS_STRIPE if provider == "stripe" else EVENTS_PAYPAL)[step]
    return PaymentEvent(event_key=f"{provider}:evt_{uuid.uuid4().hex}", payment_id=payment_id, provider=provider,
                        event_type=event_type, kind="payment", status=status, amount_minor=amount, currency=currency,
                        occurred_at=when, received_at=when, envelope_id=str(uuid.uuid4()))


@dataclass
class Row:
    """What one payment adds to its window, as the story says."""

    expected: int | None = None
    confirmed: int | None = None
    status: str | None = None
    amount: int = 0
    captured: int = 0
    refunded: int = 0


@dataclass
class Book:
    rows: dict[str, Row] = field(default_factory=dict)
    late: int = 0

    def window(self, provider: str, currency: str, start: datetime, *, revision: int) -> ReconciliationWindow:
        counts: Counter[str] = Counter()
        sums: Counter[str] = Counter()
        for row in self.rows.values():
            if row.status:
                counts[row.status] += 1
                sums[row.status] += row.amount
        ids = sorted(self.rows)
        captured = sum(r.captured for r in self.rows.values())
        refunded = sum(r.refunded for r in self.rows.values())
        return ReconciliationWindow(
            provider=provider, currency=currency, window_start=start, window_end=start + HOUR,
            counts_by_status=dict(counts), sums_by_status=dict(sums), captured_minor=captured,
            refunded_minor=refunded, disputed_minor=0, failed_count=counts["failed"], net_minor=captured - refunded,
            ledger_expected_minor=sum(r.expected or 0 for r in self.rows.values()),
            provider_confirmed_minor=sum(r.confirmed or 0 for r in self.rows.values()),
            missing_at_provider=[i for i in ids if self.rows[i].expected is not None
                                 and self.rows[i].confirmed is None],
            unexpected_at_provider=[i for i in ids if self.rows[i].expected is None
                                    and self.rows[i].confirmed is not None],
            amount_mismatches=[AmountMismatch(payment_id=i, ledger_minor=self.rows[i].expected or 0,
                                              provider_minor=self.rows[i].confirmed or 0) for i in ids
                               if None not in (self.rows[i].expected, self.rows[i].confirmed)
                               and self.rows[i].expected != self.rows[i].confirmed],
            late_events=self.late if revision else 0, is_correction=revision > 0, revision=revision)


@dataclass
class Day:
    ledger: list[LedgerEntry] = field(default_factory=list)
    stream: list[tuple[datetime, PaymentEvent]] = field(default_factory=list)
    sweep: list[PaymentEvent] = field(default_factory=list)
    late: list[PaymentEvent | LedgerEntry] = field(default_factory=list)
    first_books: dict[tuple[str, str, datetime], Book] = field(default_factory=dict)
    final_books: dict[tuple[str, str, datetime], Book] = field(default_factory=dict)
    stories: Counter[str] = field(default_factory=Counter)

    def ordered_stream(self) -> list[PaymentEvent]:
        return [e for _, e in sorted(self.stream, key=lambda item: item[0])]

    def book(self, which: str, provider: str, currency: str, start: datetime) -> Book:
        books = self.first_books if which == "first" else self.final_books
        return books.setdefault((provider, currency, start), Book())

    def first(self) -> dict[str, ReconciliationWindow]:
        windows = [b.window(p, c, s, revision=0) for (p, c, s), b in self.first_books.items()]
        return {w.key: w for w in windows}

    def final(self) -> dict[str, ReconciliationWindow]:
        result = self.first()
        for (p, c, s), book in self.final_books.items():
            if book.late:
                window = book.window(p, c, s, revision=1)
                result[window.key] = window
        return result

    def corrected(self) -> set[str]:
        return {k for k, w in self.final().items() if w.revision}


STORIES = {"matched": 110, "refund": 20, "mismatch": 15, "missing": 15, "failed": 10, "within_grace": 15,
           "late_confirm": 10, "late_refund": 5}


def script(seed: int = 7, partitions: int = 4) -> Day:
    rng = random.Random(seed)
    day = Day()
    stories = [name for name, count in STORIES.items() for _ in range(count)]
    rng.shuffle(stories)
    on_time_windows: list[tuple[str, str, int]] = []
    for n, story in enumerate(stories):
        provider, currency = rng.choice(["stripe", "paypal"]), rng.choice(["EUR", "USD"])
        pid = f"pi_day{n:03d}" if provider == "stripe" else f"PAYDAY{n:03d}"
        amount = rng.randint(500, 50_000)
        hour = rng.randrange(24)
        expected_at = at(hour, rng.randrange(45), rng.randrange(60))
        start, end = at(hour), at(hour + 1)
        day.ledger.append(LedgerEntry(payment_id=pid, provider=provider, amount_minor=amount, currency=currency,
                                      expected_at=expected_at, merchant_reference=f"order-{n}"))
        day.stories[story] += 1
        on_time_windows.append((provider, currency, hour))
        t0 = expected_at + timedelta(minutes=rng.randrange(10))
        both = {"first": Row(expected=amount), "final": Row(expected=amount)}
        paid = amount + rng.choice([-100, 1, 250]) if story == "mismatch" else amount
        confirmed = Row(expected=amount, confirmed=paid, status="succeeded", amount=paid, captured=paid)
        if story == "missing":
            pass
        elif story == "failed":
            day.stream += [(t0, event(provider, pid, "start", amount, currency, t0)),
                           (t0 + timedelta(seconds=20), event(provider, pid, "fail", amount, currency,
                                                              t0 + timedelta(seconds=20)))]
            both = {k: Row(expected=amount, status="failed", amount=amount) for k in both}
        elif story == "late_confirm":
            day.stream.append((t0, event(provider, pid, "start", amount, currency, t0)))
            day.late.append(event(provider, pid, "confirm", amount, currency, t0 + timedelta(seconds=20)))
            both = {"first": Row(expected=amount, status="created" if provider == "stripe" else "processing",
                                 amount=amount), "final": confirmed}
        else:
            confirm_at = end - timedelta(minutes=1) if story == "within_grace" else t0 + timedelta(seconds=20)
            published = end + timedelta(minutes=4) if story == "within_grace" else confirm_at
            day.stream += [(t0, event(provider, pid, "start", paid, currency, t0)),
                           (published, event(provider, pid, "confirm", paid, currency, confirm_at))]
            both = {"first": confirmed, "final": confirmed}
            if story in ("refund", "late_refund"):
                refund = paid // 3
                when = t0 + timedelta(minutes=5) if story == "refund" else end + GRACE + timedelta(minutes=20)
                day.stream.append((when, event(provider, pid, "refund", paid, currency, when, refund=refund)))
                refunded = Row(expected=amount, confirmed=paid, status="partially_refunded", amount=paid,
                               captured=paid, refunded=refund)
                both = {"first": refunded if story == "refund" else confirmed, "final": refunded}
        for which, row in both.items():
            day.book(which, provider, currency, start).rows[pid] = row
        if story in ("late_confirm", "late_refund"):
            day.book("final", provider, currency, start).late += 1
    _provider_only(day, rng, on_time_windows)
    _sweep(day, partitions)
    return day


def _provider_only(day: Day, rng: random.Random, windows: list[tuple[str, str, int]]) -> None:
    """Payments the ledger never expected (or expects only after grace)."""
    plan = ["unexpected"] * 20 + ["unexpected_failed"] * 3 + ["late_unexpected"] * 3 + ["late_ledger"] * 4
    for n, story in enumerate(plan):
        if story == "late_unexpected":  # into a window that has on-time payments, so its first result exists
            provider, currency, hour = rng.choice(windows)
        else:
            provider, currency, hour = rng.choice(["stripe", "paypal"]), rng.choice(["EUR", "USD"]), rng.randrange(24)
        pid = f"pi_extra{n:03d}" if provider == "stripe" else f"PAYEXTRA{n:03d}"
        amount = rng.randint(500, 50_000)
        t0 = at(hour, rng.randrange(10, 50), rng.randrange(60))
        start = at(hour)
        day.stories[story] += 1
        steps = [(t0, event(provider, pid, "start", amount, currency, t0))]
        last = "fail" if story == "unexpected_failed" else "confirm"
        steps.append((t0 + timedelta(seconds=20), event(provider, pid, last, amount, currency,
                                                        t0 + timedelta(seconds=20))))
        if story == "late_unexpected":
            day.late += [e for _, e in steps]
        else:
            day.stream += steps
        if story == "unexpected_failed":
            row = Row(status="failed", amount=amount)
        else:
            row = Row(confirmed=amount, status="succeeded", amount=amount, captured=amount)
        if story != "late_unexpected":
            day.book("first", provider, currency, start).rows[pid] = row
        final = day.book("final", provider, currency, start)
        final.rows[pid] = row
        if story == "late_unexpected":
            final.late += 2  # its first event places it, its confirmation changes it: both after grace
        elif story == "late_ledger":
            day.late.append(LedgerEntry(payment_id=pid, provider=provider, amount_minor=amount, currency=currency,
                                        expected_at=t0 - timedelta(minutes=5), merchant_reference=f"late-{n}"))
            final.rows[pid] = Row(expected=amount, confirmed=amount, status="succeeded", amount=amount,
                                  captured=amount)
            final.late += 1


def _sweep(day: Day, partitions: int) -> None:
    """Next morning, an event on every events partition: every clock passes the day's last window + grace."""
    covered: set[int] = set()
    when = at(24, 30)
    n = 0
    while len(covered) < partitions:
        pid = f"pi_sweep{n:03d}"
        partition = partition_for(f"stripe:{pid}".encode(), partitions)
        if partition not in covered:
            covered.add(partition)
            day.sweep.append(event("stripe", pid, "start", 100, "USD", when))
        n += 1
