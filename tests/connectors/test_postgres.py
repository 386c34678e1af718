"""PostgreSQL specifics: COPY fallback on refused rows, and a dropped connection as backpressure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

import pytest

from connectors.base import Rejected
from connectors.database import DatabaseSink
from connectors.exceptions import SinkBackpressureError
from tests.connectors.conftest import Db
from tests.connectors.factories import EVENTS, EVENTS_SQL, Feed, event

pytestmark = pytest.mark.postgres

SinkFactory = Callable[..., Awaitable[DatabaseSink]]


async def test_text_postgres_refuses_is_dead_lettered_alone(db_factory: Callable[..., Db], sink_factory: SinkFactory,
                                                            feed: Feed) -> None:
    published: list[Rejected] = []

    async def dead_letter(rejected: Sequence[Rejected]) -> None:
        published.extend(rejected)

    db = db_factory("postgresql")
    sink = await sink_factory(db, feed.catalog, dead_letter=dead_letter)
    nul = feed.raw(feed.catalog.events, "stripe:pay_nul",
                   EVENTS.encode(replace(event(50), provider_status="bad\x00status")))
    for i in range(20):
        sink.add(feed.event(event(i)))
        if i == 10:
            sink.add(nul)
    await sink.flush()

    assert [(r.record.offset, type(r.error).__name__) for r in published] == [(nul.offset, "DataError")]
    assert db.set(EVENTS_SQL) == feed.expected_events()
    assert await sink.stored_offsets() == feed.offsets


async def test_lost_connection_is_backpressure_then_reconnects(db_factory: Callable[..., Db],
                                                               sink_factory: SinkFactory, feed: Feed) -> None:
    db = db_factory("postgresql")
    sink = await sink_factory(db, feed.catalog)
    sink.add(feed.event(event(0)))
    await sink.flush()
    backend_pid = sink._conn.info.backend_pid  # type: ignore[attr-defined]
    with db.connect_pg() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))
    sink.add(feed.event(event(1)))
    with pytest.raises(SinkBackpressureError):
        await sink.flush()
    assert sink.pending == 1
    await sink.flush()  # a fresh connection (and fresh staging tables)
    assert db.set(EVENTS_SQL) == feed.expected_events()
