"""Trouble: kill -9 mid-batch, PostgreSQL stopped for 20 s, SQLite locked. Afterwards: exact contents."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from connectors.targets import sqlite_path
from paystream.core.broker import free_port
from schemas.topics import TopicCatalog, ensure_topics
from tests.connectors.conftest import (
    PAYSTREAM_BIN,
    Db,
    RunningSink,
    end_offsets,
    eventually,
    send_all,
    sink_env,
    sink_settings,
)
from tests.connectors.factories import EVENTS_SQL, PAYMENTS_SQL, Feed, event, state
from tests.fixtures.databases import pg_ctl

pytestmark = [pytest.mark.broker, pytest.mark.slow]

RunnerFactory = Callable[..., Awaitable[RunningSink]]


def exact(db: Db, feed: Feed) -> bool:
    return db.set(EVENTS_SQL) == feed.expected_events() and db.set(PAYMENTS_SQL) == feed.expected_payments()


async def produce_steadily(bootstrap: str, feed: Feed, *, chunks: int, per_chunk: int, pause_s: float,
                           until: asyncio.Event | None = None) -> None:
    """Events plus ever newer states for 50 payments, in small acknowledged chunks.

    With `until`, keeps going past `chunks` until the event is set, then sends `chunks` more,
    so records are still flowing whenever the caller acts.
    """
    n = 0
    chunk = 0
    extra = 0
    while chunk < chunks or (until is not None and not until.is_set()) or (until is not None and extra < chunks):
        if until is not None and until.is_set():
            extra += 1
        records = []
        for _ in range(per_chunk):
            records.append(feed.event(event(n, payment=n % 50)))
            records.append(feed.state(state(n % 50, chunk + 1, captured=n)))
            n += 1
        await send_all(bootstrap, records)
        chunk += 1
        await asyncio.sleep(pause_s)


async def assert_exact_and_committed(db: Db, bootstrap: str, feed: Feed) -> None:
    await eventually(lambda: exact(db, feed), timeout_s=60, what="tables equal to the topics")
    ends = await end_offsets(bootstrap, [feed.catalog.events, feed.catalog.state])
    stored = {(t, p): o for t, p, o in db.rows("SELECT topic, partition, next_offset FROM sink_offsets")}
    assert stored == ends


async def test_kill_9_mid_batch_then_restart_lands_exactly(
    kafka: Any, topic_catalog_factory: Callable[..., TopicCatalog], sink_backend: Db,
    sink_process_factory: Callable[..., subprocess.Popen[bytes]],
) -> None:
    feed = Feed(topic_catalog_factory())
    await ensure_topics(kafka.bootstrap, feed.catalog)
    settings = sink_settings(kafka.bootstrap, feed.catalog, sink_backend.url, sink_batch_size=400,
                             sink_batch_ms=50, sink_metrics_port=free_port())
    migrate = subprocess.run([str(PAYSTREAM_BIN), "sink", "migrate"], env=sink_env(settings), capture_output=True,
                             timeout=60, check=False)
    assert migrate.returncode == 0, migrate.stderr.decode()
    assert b"at revision 0005" in migrate.stdout  # the head migration (0005: payment fold revision)

    killed = asyncio.Event()
    producer = asyncio.create_task(produce_steadily(kafka.bootstrap, feed, chunks=20, per_chunk=50, pause_s=0.1,
                                                    until=killed))
    try:
        sink = sink_process_factory(settings)
        await eventually(lambda: sink_backend.count("payment_events") > 0, what="first rows")
        await asyncio.sleep(random.uniform(0.0, 0.3))  # somewhere inside the stream of batches
        sink.kill()
        sink.wait(10)
        killed.set()  # the producer sends 20 more chunks: records flowed before and after the kill
        landed = sink_backend.count("payment_events")
        assert landed > 0

        restarted = sink_process_factory(settings)
        await producer
        assert landed < len(feed.expected_events())
        await assert_exact_and_committed(sink_backend, kafka.bootstrap, feed)
        restarted.send_signal(signal.SIGTERM)  # graceful: flush, commit, leave the group, exit 0
        assert await asyncio.to_thread(restarted.wait, 30) == 0
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer


@pytest.mark.postgres
async def test_postgres_stopped_for_20s_then_exact_and_ready_again(
    kafka: Any, topic_catalog_factory: Callable[..., TopicCatalog], db_factory: Callable[..., Db],
    runner_factory: RunnerFactory,
) -> None:
    db = db_factory("postgresql")
    feed = Feed(topic_catalog_factory())
    await ensure_topics(kafka.bootstrap, feed.catalog)
    sink = await runner_factory(sink_settings(kafka.bootstrap, feed.catalog, db.url))
    producer = asyncio.create_task(produce_steadily(kafka.bootstrap, feed, chunks=50, per_chunk=20, pause_s=0.5))
    readiness: list[bool] = []
    try:
        await eventually(lambda: db.count("payment_events") > 0, what="first rows")
        pg_ctl("stop")
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                readiness.append(sink.runner.ready)
                await asyncio.sleep(0.5)
        finally:
            pg_ctl("start")
        await producer
        await assert_exact_and_committed(db, kafka.bootstrap, feed)
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer

    assert False in readiness, "the sink must report not-ready while the database is down"
    await eventually(lambda: sink.runner.ready, what="ready again")
    assert sink.runner.server is not None
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sink.runner.server.port}") as client:
        assert (await client.get("/ready")).status_code == 200
        metrics = (await client.get("/metrics")).text
    paused = next(line for line in metrics.splitlines() if line.startswith("paystream_sink_paused_seconds_total"))
    assert float(paused.split()[-1]) > 5
    assert 'paystream_sink_db_errors_total{kind="unavailable"}' in metrics


async def test_sqlite_locked_pauses_then_resumes_exactly(
    kafka: Any, topic_catalog_factory: Callable[..., TopicCatalog], db_factory: Callable[..., Db],
    runner_factory: RunnerFactory,
) -> None:
    db = db_factory("sqlite")
    feed = Feed(topic_catalog_factory())
    await ensure_topics(kafka.bootstrap, feed.catalog)
    sink = await runner_factory(sink_settings(kafka.bootstrap, feed.catalog, db.url))
    await send_all(kafka.bootstrap, [feed.event(event(i)) for i in range(100)])
    await eventually(lambda: exact(db, feed), what="first rows")

    with contextlib.closing(sqlite3.connect(sqlite_path(db.url), isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")  # e.g. a long maintenance job
        await send_all(kafka.bootstrap, [feed.event(event(i)) for i in range(100, 300)])
        deadline = time.monotonic() + 20
        while sink.runner.ready:
            assert time.monotonic() < deadline, "the sink never noticed the lock"
            await asyncio.sleep(0.1)
        assert sink.runner.metrics.paused._value.get() == 1
        other.execute("ROLLBACK")

    await eventually(lambda: exact(db, feed), what="rows after the lock")
    await eventually(lambda: sink.runner.ready, what="ready again")
    assert sink.runner.metrics.paused._value.get() == 0
