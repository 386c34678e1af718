"""The flush protocol and the conflict rules, on SQLite and PostgreSQL alike (no broker needed)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import pytest

from connectors.base import FlushResult, Rejected, SinkRecord
from connectors.database import DatabaseSink
from schemas.exceptions import DecodeError
from tests.connectors.conftest import Db
from tests.connectors.factories import (
    BASE,
    EVENTS,
    EVENTS_SQL,
    PAYMENTS_SQL,
    STATES,
    WINDOWS_SQL,
    Feed,
    event,
    state,
    window,
)

SinkFactory = Callable[..., Awaitable[DatabaseSink]]


async def flush(sink: DatabaseSink, records: Sequence[SinkRecord]) -> FlushResult:
    for record in records:
        sink.add(record)
    return await sink.flush()


def assert_matches(db: Db, feed: Feed) -> None:
    assert db.set(EVENTS_SQL) == feed.expected_events()
    assert db.set(PAYMENTS_SQL) == feed.expected_payments()
    assert db.set(WINDOWS_SQL) == feed.expected_windows()


async def test_lands_every_table_with_its_offsets(sink_backend: Db, sink_factory: SinkFactory, feed: Feed) -> None:
    sink = await sink_factory(sink_backend, feed.catalog)
    records = [feed.event(event(i), partition=i % 2) for i in range(10)]
    records += [feed.state(state(p, v)) for p in range(3) for v in (1, 2)]
    records += [feed.window(window()), feed.dead_letter(7)]
    result = await flush(sink, records)

    assert result.records == len(records) and not result.rejected
    assert result.rows == {"payment_events": 10, "payments": 3, "reconciliation_windows": 1, "dead_letters": 1}
    assert_matches(sink_backend, feed)
    assert sink.pending == 0
    assert await sink.stored_offsets() == feed.offsets
    assert sink_backend.set("SELECT topic, partition, next_offset FROM sink_offsets") == {
        (t, p, o) for (t, p), o in feed.offsets.items()}


async def test_replaying_a_batch_changes_nothing(sink_backend: Db, sink_factory: SinkFactory, feed: Feed) -> None:
    sink = await sink_factory(sink_backend, feed.catalog)
    records = [feed.event(event(i)) for i in range(5)] + [feed.state(state(1, v)) for v in (1, 2, 3)]
    records.append(feed.window(window(revision=1)))
    await flush(sink, records)
    before = sink_backend.rows("SELECT * FROM payments"), sink_backend.rows(EVENTS_SQL)

    replay = await flush(sink, records)  # what a crash between commit and the next poll would redeliver

    assert replay.rows.get("payment_events", 0) == 0 and replay.rows.get("payments", 0) == 0
    after = sink_backend.rows("SELECT * FROM payments"), sink_backend.rows(EVENTS_SQL)
    assert after == before


async def test_event_conflict_keeps_the_first(sink_backend: Db, sink_factory: SinkFactory, feed: Feed) -> None:
    sink = await sink_factory(sink_backend, feed.catalog)
    first = event(1, amount=100)
    await flush(sink, [feed.event(first), feed.event(event(1, amount=999))])  # same key twice in one batch
    await flush(sink, [feed.event(event(1, amount=555))])
    assert sink_backend.rows("SELECT amount_minor FROM payment_events") == [(100,)]


async def test_version_guard_newest_wins_out_of_order(sink_backend: Db, sink_factory: SinkFactory,
                                                      feed: Feed) -> None:
    sink = await sink_factory(sink_backend, feed.catalog)
    await flush(sink, [feed.state(state(1, 3, status="refunded")), feed.state(state(1, 1, status="created"))])
    await flush(sink, [feed.state(state(1, 2, status="processing"))])
    # an equal version never overwrites either
    await flush(sink, [feed.raw(feed.catalog.state, "stripe:pay_1",
                                 STATES.encode(
                                     state(1, 3, status="failed")))])
    # states of another payment arriving newest-last within one batch
    await flush(sink, [feed.state(state(2, v, status=s)) for v, s in ((2, "authorized"), (1, "created"),
                                                                      (4, "succeeded"), (3, "processing"))])

    assert sink_backend.set("SELECT payment_id, version, status FROM payments") == {
        ("pay_1", 3, "refunded"), ("pay_2", 4, "succeeded")}


async def test_new_broker_incarnation_resets_offsets_and_replaces_versions(
    sink_backend: Db, sink_factory: SinkFactory, feed: Feed
) -> None:
    sink = await sink_factory(sink_backend, feed.catalog, cluster_id="cluster-a")
    await flush(sink, [feed.state(state(1, 5, status="succeeded")), feed.event(event(1))])
    assert await sink.stored_offsets()

    assert await sink.use_incarnation("cluster-b") == 2  # the two partitions written under cluster-a
    assert await sink.stored_offsets() == {}
    await flush(sink, [feed.raw(feed.catalog.state, "stripe:pay_1", STATES.encode(state(1, 1, status="created")))])

    assert sink_backend.rows("SELECT version, status, incarnation FROM payments") == [(1, "created", "cluster-b")]
    assert sink_backend.count("payment_events") == 1  # rows are kept
    assert await sink.use_incarnation("cluster-b") == 0


async def test_reconciliation_correction_replaces(sink_backend: Db, sink_factory: SinkFactory, feed: Feed) -> None:
    sink = await sink_factory(sink_backend, feed.catalog)
    await flush(sink, [feed.window(window(net=100))])
    await flush(sink, [feed.window(window(net=80, revision=1, missing=["pay_9"], mismatches=[("pay_3", 10, 8)]))])
    [(net, revision, missing, mismatches, count)] = sink_backend.rows(
        "SELECT net_minor, revision, missing_at_provider, amount_mismatches, mismatch_count "
        "FROM reconciliation_windows")
    as_json = (lambda v: v) if sink_backend.kind == "postgresql" else json.loads
    assert (net, revision, count) == (80, 1, 1)
    assert as_json(missing) == ["pay_9"]
    assert as_json(mismatches) == [{"payment_id": "pay_3", "ledger_minor": 10, "provider_minor": 8}]


async def test_a_stale_revision_never_replaces_a_newer_correction(sink_backend: Db, sink_factory: SinkFactory,
                                                                   feed: Feed) -> None:
    sink = await sink_factory(sink_backend, feed.catalog, cluster_id="cluster-a")
    await flush(sink, [feed.window(window(net=70, revision=2))])
    await flush(sink, [feed.window(window(net=100, revision=0)), feed.window(window(net=80, revision=1))])
    assert sink_backend.rows("SELECT net_minor, revision FROM reconciliation_windows") == [(70, 2)]
    # within one batch, newest-first
    await flush(sink, [feed.window(window(net=60, revision=4)), feed.window(window(net=65, revision=3))])
    assert sink_backend.rows("SELECT net_minor, revision FROM reconciliation_windows") == [(60, 4)]
    # the same revision again (re-emitted after a rebalance) is applied
    await flush(sink, [feed.window(window(net=61, revision=4))])
    assert sink_backend.rows("SELECT net_minor, revision FROM reconciliation_windows") == [(61, 4)]
    # a new broker incarnation restarts revisions: its revision 0 replaces the old row
    await sink.use_incarnation("cluster-b")
    await flush(sink, [feed.window(window(net=5, revision=0))])
    assert sink_backend.rows("SELECT net_minor, revision, incarnation FROM reconciliation_windows") == [
        (5, 0, "cluster-b")]


async def test_rejected_records_go_to_dead_letters_and_the_rest_lands(
    sink_backend: Db, sink_factory: SinkFactory, feed: Feed
) -> None:
    published: list[Rejected] = []

    async def dead_letter(rejected: Sequence[Rejected]) -> None:
        published.extend(rejected)

    sink = await sink_factory(sink_backend, feed.catalog, dead_letter=dead_letter)
    good = [feed.event(event(i)) for i in range(5)] + [feed.state(state(1, 1))]
    bad_event = feed.raw(feed.catalog.events, "stripe:pay_x", EVENTS.encode(event(99, currency="usdx")))
    undecodable = feed.raw(feed.catalog.state, "stripe:pay_y", b"\x00garbage")
    tombstone = feed.raw(feed.catalog.state, "stripe:pay_z", None)
    result = await flush(sink, [*good[:3], bad_event, undecodable, tombstone, *good[3:]])

    assert {(r.record.topic, r.record.offset) for r in published} == {
        (bad_event.topic, bad_event.offset), (undecodable.topic, undecodable.offset)}
    assert {type(r.error) for r in published} >= {DecodeError}
    assert result.rejected and len(result.rejected) == 2
    assert_matches(sink_backend, feed)
    assert await sink.stored_offsets() == feed.offsets  # committed past the rejects and the tombstone


async def test_dead_letter_rows_keep_headers_and_bytes(sink_backend: Db, sink_factory: SinkFactory,
                                                       feed: Feed) -> None:
    sink = await sink_factory(sink_backend, feed.catalog)
    headerless = feed.raw(feed.catalog.dlq, "k", b"\xff\x00raw")
    await flush(sink, [feed.dead_letter(41, payload=b"\x00\x01body"), headerless])

    rows = sink_backend.rows("SELECT original_topic, original_partition, original_offset, stage, exception_class, "
                             "exception_message, payload, failed_at_ms, original_key, attempts "
                             "FROM dead_letters ORDER BY original_offset")
    assert [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows] == [
        (feed.catalog.dlq, 0, 0, "unknown", "", "record on the dead-letter topic without dlq.* headers",
         b"\xff\x00raw", int(BASE.timestamp() * 1000), "k", 1),
        (feed.catalog.raw, 0, 41, "normalize", "ValueError", "bad body", b"\x00\x01body",
         int(BASE.timestamp() * 1000), "stripe:evt_dl41", 1),
    ]


async def test_timestamps_and_json_read_the_same_on_both(sink_backend: Db, sink_factory: SinkFactory,
                                                         feed: Feed) -> None:
    sink = await sink_factory(sink_backend, feed.catalog)
    late = BASE + timedelta(hours=13, milliseconds=7)  # 2026-03-02 01:00:00.007 UTC
    await flush(sink, [feed.event(event(1, at=late))])
    [(day, ms, related)] = sink_backend.rows(
        "SELECT CAST(date(occurred_at) AS TEXT), occurred_at_ms, related_ids FROM payment_events")
    assert day == "2026-03-02"
    assert ms == int(late.timestamp() * 1000)
    assert (related if isinstance(related, dict) else json.loads(related)) == {"charge": "ch_1"}
    [(ordered,)] = sink_backend.rows("SELECT count(*) FROM payment_events WHERE occurred_at > ingested_at")
    assert ordered == 0


@pytest.mark.parametrize("kind", ["sqlite"])
async def test_flush_of_nothing_is_free(kind: str, db_factory: Callable[..., Db], sink_factory: SinkFactory,
                                        feed: Feed) -> None:
    sink = await sink_factory(db_factory(kind), feed.catalog)
    assert await sink.flush() == FlushResult()
