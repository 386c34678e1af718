"""SQLite specifics: WAL, and a locked database as backpressure."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable

import pytest

from connectors.database import DatabaseSink
from connectors.exceptions import SinkBackpressureError
from connectors.targets import sqlite_path
from tests.connectors.conftest import Db
from tests.connectors.factories import EVENTS, EVENTS_SQL, Feed, event

SinkFactory = Callable[..., Awaitable[DatabaseSink]]


async def test_uses_wal_so_readers_never_block_the_sink(db_factory: Callable[..., Db], sink_factory: SinkFactory,
                                                        feed: Feed) -> None:
    db = db_factory("sqlite")
    sink = await sink_factory(db, feed.catalog)
    with contextlib.closing(sqlite3.connect(sqlite_path(db.url), isolation_level=None)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM payment_events").fetchall()  # an analyst mid-transaction
        sink.add(feed.event(event(1)))
        await sink.flush()
        reader.execute("COMMIT")
    assert db.rows("PRAGMA journal_mode") == [("wal",)]
    assert db.count("payment_events") == 1


async def test_locked_database_is_backpressure_and_the_batch_is_kept(
    db_factory: Callable[..., Db], feed: Feed
) -> None:
    from connectors.sqlite import SqliteSink

    db = db_factory("sqlite")
    sink = SqliteSink(sqlite_path(db.url), feed.catalog, busy_timeout_s=0.1)
    await sink.start()
    try:
        await sink.use_incarnation("c")
        with contextlib.closing(sqlite3.connect(sqlite_path(db.url), isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
            for i in range(3):
                sink.add(feed.event(event(i)))
            with pytest.raises(SinkBackpressureError, match="locked"):
                await sink.flush()
            assert sink.pending == 3
            other.execute("ROLLBACK")
        await sink.flush()
        assert db.set(EVENTS_SQL) == feed.expected_events()
        assert await sink.stored_offsets() == feed.offsets
    finally:
        await sink.stop()


async def test_records_added_during_a_failed_flush_stay_behind_it(db_factory: Callable[..., Db], feed: Feed) -> None:
    """The runner keeps consuming while a flush runs; a failed flush must go back in front, in order."""
    from connectors.sqlite import SqliteSink

    db = db_factory("sqlite")
    sink = SqliteSink(sqlite_path(db.url), feed.catalog, busy_timeout_s=0.2)
    await sink.start()
    try:
        await sink.use_incarnation("c")
        first = feed.event(event(1, amount=111))
        with contextlib.closing(sqlite3.connect(sqlite_path(db.url), isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            sink.add(first)
            flushing = asyncio.create_task(sink.flush())
            await asyncio.sleep(0.05)  # the flush took its snapshot and waits for the lock
            assert (sink.pending, sink.buffered) == (1, 0)
            sink.add(feed.raw(feed.catalog.events, "stripe:pay_1", EVENTS.encode(event(1, amount=222))))
            sink.add(feed.event(event(2), partition=1))
            assert sink.discard([(feed.catalog.events, 1)]) == 1  # a rebalance took partition 1 meanwhile
            with pytest.raises(SinkBackpressureError):
                await flushing
            assert (sink.pending, sink.buffered) == (2, 2)
            other.execute("ROLLBACK")
        await sink.flush()
        assert db.rows("SELECT event_key, amount_minor FROM payment_events") == [("stripe:evt_1", 111)]
        assert await sink.stored_offsets() == {(feed.catalog.events, 0): 2}
    finally:
        await sink.stop()
