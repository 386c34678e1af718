"""Every ```sql block in docs/analytics.md runs as written on SQLite and PostgreSQL, with the same answers."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.database import DatabaseSink
from schemas.clock import now_ms
from tests.connectors.conftest import Db
from tests.connectors.factories import Feed, event, state, window

DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"


def sql_blocks(text: str) -> list[tuple[str, str]]:
    """(slug of the nearest ### heading, query) for every fenced sql block, in document order."""
    blocks: list[tuple[str, str]] = []
    title, inside = "", False
    lines: list[str] = []
    for line in text.splitlines():
        if inside and line.startswith("```"):
            blocks.append((title, "\n".join(lines)))
            inside = False
        elif inside:
            lines.append(line)
        elif line.startswith("```sql"):
            inside, lines = True, []
        elif line.startswith("### "):
            title = re.sub(r"\W+", "-", line[4:].lower()).strip("-")
    return blocks


BLOCKS = sql_blocks(DOC.read_text("utf-8"))
TITLES = [t for t, _ in BLOCKS]
QUERIES = [q for _, q in BLOCKS]

SinkFactory = Callable[..., Awaitable[DatabaseSink]]


def test_the_document_has_the_queries_the_issue_asks_for() -> None:
    assert len(set(TITLES)) == len(QUERIES) >= 5
    for needed in ("daily-net-volume", "refund-rate", "dispute-rate", "stuck-in-processing", "reconciliation"):
        assert any(needed in title for title in TITLES), needed


async def seed(db: Db, sink_factory: SinkFactory, feed: Feed, now: datetime | None = None) -> None:
    """A small, known world relative to now: one stuck payment, one anomalous window this week, …"""
    now = now or now_ms()
    day = timedelta(days=1)
    ago = {n: now - n * day for n in (3, 2, 1)}
    records = [
        feed.state(state(1, 2, captured=1000, created=ago[3], updated=ago[3])),
        feed.state(state(2, 3, status="partially_refunded", captured=2000, refunded=500, created=ago[3])),
        feed.state(state(3, 4, status="dispute_lost", captured=3000, disputed=3000, created=ago[3])),
        feed.state(state(4, 4, provider="paypal", status="dispute_won", captured=1500, currency="EUR",
                         created=ago[2])),
        feed.state(state(5, 1, provider="paypal", status="processing", currency="EUR", created=ago[2],
                         updated=ago[2])),
        feed.state(state(6, 1, status="processing", created=now - timedelta(hours=1),
                         updated=now - timedelta(hours=1))),
        feed.state(state(7, 2, provider="paypal", captured=500, currency="JPY", created=ago[1])),
        feed.event(event(30, payment=3, kind="dispute", status="disputed", at=ago[2])),
        feed.event(event(31, payment=3, kind="dispute", status="dispute_lost", at=ago[1])),
        feed.event(event(40, payment=4, provider="paypal", kind="dispute", status="disputed", currency="EUR",
                         at=ago[1])),
        feed.event(event(10, payment=1, at=ago[3])),
        feed.window(window(start=(now - 2 * day).replace(minute=0, second=0, microsecond=0), missing=["pay_9"],
                           ledger=6000, confirmed=5000)),
        feed.window(window(start=(now - day).replace(minute=0, second=0, microsecond=0))),
        feed.window(window(start=(now - 10 * day).replace(minute=0, second=0, microsecond=0), late=3)),
        feed.dead_letter(1, failed_at=now - timedelta(hours=1)),
        feed.dead_letter(2, stage="verify", failed_at=ago[3]),
    ]
    sink = await sink_factory(db, feed.catalog)
    for record in records:
        sink.add(record)
    assert not (await sink.flush()).rejected


def normalize(value: Any) -> Any:
    """Driver types to one vocabulary: numbers as rounded floats, times as the SQLite text form, JSON parsed."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal | float):
        return round(float(value), 4)
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def run_all(db: Db) -> dict[str, list[tuple[Any, ...]]]:
    if db.kind == "postgresql":
        with db.connect_pg() as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            return {t: [tuple(normalize(v) for v in row) for row in conn.execute(q).fetchall()]
                    for t, q in zip(TITLES, QUERIES, strict=True)}
    return {t: [tuple(normalize(v) for v in row) for row in db.rows(q)] for t, q in zip(TITLES, QUERIES, strict=True)}


async def test_every_query_runs_and_answers_right(sink_backend: Db, sink_factory: SinkFactory, feed: Feed) -> None:
    await seed(sink_backend, sink_factory, feed)
    results = run_all(sink_backend)
    by = {next(t for t in TITLES if key in t): key for key in
          ("daily-net-volume", "refund-rate", "dispute-rate", "stuck-in-processing", "reconciliation", "dead-letters",
           "fresh")}
    answers = {by[t]: rows for t, rows in results.items() if t in by}
    assert all(results.values()), {t: rows for t, rows in results.items() if not rows}

    assert sum(r[7] for r in answers["daily-net-volume"] if r[1:3] == ("stripe", "USD")) == 1000 + 1500 + 0
    assert [r[:5] for r in answers["refund-rate"]] == [
        ("paypal", "EUR", 1, 0, 0.0), ("paypal", "JPY", 1, 0, 0.0), ("stripe", "USD", 3, 1, 0.3333)]
    assert [r[:8] for r in answers["dispute-rate"]] == [
        ("paypal", "EUR", 1, 1, 1.0, 0, 1, 0), ("paypal", "JPY", 1, 0, 0.0, 0, 0, 0),
        ("stripe", "USD", 3, 1, 0.3333, 0, 0, 1)]
    [stuck] = answers["stuck-in-processing"]
    assert stuck[:2] == ("paypal", "pay_5") and stuck[5] == 48
    [anomaly] = answers["reconciliation"]
    assert anomaly[6:9] == (-1000, 1, 0) and anomaly[12] == ["pay_9"]
    assert [r[:3] for r in answers["dead-letters"]] == [("normalize", "ValueError", 1)]
    assert {r[0] for r in answers["fresh"]} == {feed.catalog.events, feed.catalog.state, feed.catalog.reconciliation,
                                                feed.catalog.dlq}


@pytest.mark.postgres
async def test_both_databases_give_the_same_answers(db_factory: Callable[..., Db], sink_factory: SinkFactory,
                                                    feed: Feed) -> None:
    answers, now = [], now_ms()
    for kind in ("sqlite", "postgresql"):
        db = db_factory(kind)
        await seed(db, sink_factory, feed, now)
        answers.append(run_all(db))
    lite, pg = answers
    volatile = {t for t in TITLES if "fresh" in t}  # when the rows were written differs between the two runs
    for title in TITLES:
        if title not in volatile:
            assert lite[title] == pg[title], title
