"""The sink process against a real broker and real databases."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from connectors.exceptions import SinkConfigError
from connectors.runner import SinkRunner
from paystream.core.broker import EmbeddedBroker
from schemas.dlq import parse_dlq_headers
from schemas.topics import TopicCatalog, ensure_topics
from tests.connectors.conftest import Db, RunningSink, end_offsets, eventually, send_all, sink_settings
from tests.connectors.factories import (
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
from tests.fixtures.kafka import drain

pytestmark = pytest.mark.broker

RunnerFactory = Callable[..., Awaitable[RunningSink]]


def exact(db: Db, feed: Feed) -> bool:
    return (db.set(EVENTS_SQL) == feed.expected_events() and db.set(PAYMENTS_SQL) == feed.expected_payments()
            and db.set(WINDOWS_SQL) == feed.expected_windows())


async def assert_fully_committed(db: Db, bootstrap: str, catalog: TopicCatalog) -> None:
    ends = await end_offsets(bootstrap, [catalog.events, catalog.state, catalog.reconciliation, catalog.dlq])
    await eventually(lambda: {(t, p): o for t, p, o in db.rows(
        "SELECT topic, partition, next_offset FROM sink_offsets")} == ends, what="sink_offsets at the log end")


@pytest.mark.both_brokers
async def test_lands_the_topics_exactly_dead_letters_rejects_and_serves_metrics(
    kafka: Any, topic_catalog_factory: Callable[..., TopicCatalog], sink_backend: Db, runner_factory: RunnerFactory,
    consumer_factory: Callable[..., Awaitable[Any]],
) -> None:
    feed = Feed(topic_catalog_factory())
    await ensure_topics(kafka.bootstrap, feed.catalog)
    records = [feed.event(event(i, payment=i % 40)) for i in range(300)]
    records += [feed.event(event(i, payment=i % 40, amount=1)) for i in range(20)]  # redelivered duplicates
    records += [feed.state(state(p, v)) for p in range(40) for v in (2, 1, 4, 3)]  # out of order, same partition
    records += [feed.window(window(net=10)), feed.window(window(net=9, revision=1)), feed.dead_letter(3)]
    bad_currency = feed.raw(feed.catalog.events, "stripe:pay_bad", EVENTS.encode(event(900, currency="usdx")))
    garbage = feed.raw(feed.catalog.state, "stripe:pay_junk", b"not avro at all")
    await send_all(kafka.bootstrap, [*records[:150], bad_currency, garbage, *records[150:]])

    sink = await runner_factory(sink_settings(kafka.bootstrap, feed.catalog, sink_backend.url,
                                              embedded_broker=kafka.is_embedded))
    await eventually(lambda: exact(sink_backend, feed) and sink_backend.count("dead_letters") == 3,
                     what="tables equal to the topics, plus the two rejects as dead letters")
    await assert_fully_committed(sink_backend, kafka.bootstrap, feed.catalog)

    # the rejects went to the DLQ topic with stage=sink, and from there into dead_letters
    dlq = [r for r in await drain(await consumer_factory(feed.catalog.dlq), expected=3)
           if parse_dlq_headers(r.headers).stage == "sink"]
    infos = sorted((parse_dlq_headers(r.headers) for r in dlq), key=lambda i: i.original_topic)
    assert [(i.original_topic, i.stage) for i in infos] == [(feed.catalog.events, "sink"), (feed.catalog.state, "sink")]
    assert infos[0].exception_class in {"IntegrityError", "CheckViolation"}  # sqlite3 / psycopg
    assert infos[1].exception_class == "DecodeError"
    assert {bytes(r.value) for r in dlq} == {bad_currency.value, garbage.value}
    # the dead-letter producer follows the broker: idempotent (a producer id from the broker) on Apache Kafka only
    idempotence = sink.runner.producer._txn_manager
    assert (idempotence is not None and idempotence.has_pid()) is not kafka.is_embedded
    rows = sink_backend.rows("SELECT original_topic, stage, exception_class, original_key FROM dead_letters "
                             "WHERE stage = 'sink' ORDER BY original_topic")
    assert rows == [(feed.catalog.events, "sink", infos[0].exception_class, "stripe:pay_bad"),
                    (feed.catalog.state, "sink", "DecodeError", "stripe:pay_junk")]

    assert sink.runner.server is not None
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sink.runner.server.port}") as client:
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/ready")).status_code == 200
        text = (await client.get("/metrics")).text
    assert 'paystream_sink_rows_written_total{table="payment_events"} 300.0' in text
    assert f'paystream_sink_dead_letters_total{{topic="{feed.catalog.events}"}} 1.0' in text
    assert "paystream_sink_batch_seconds_bucket" in text
    # webhook received -> row committed: these events were "received" in March, so every one is > 300 s old
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
               if line.startswith("paystream_sink_end_to_end_seconds")}
    assert samples["paystream_sink_end_to_end_seconds_count"] >= 300
    assert samples['paystream_sink_end_to_end_seconds_bucket{le="300.0"}'] == 0
    assert "paystream_sink_ready 1.0" in text
    assert f'paystream_sink_consumer_lag{{topic="{feed.catalog.events}"}}' in text


async def test_a_10kb_payment_id_is_dead_lettered_and_the_sink_stays_ready(
    kafka: Any, topic_catalog_factory: Callable[..., TopicCatalog], sink_backend: Db, runner_factory: RunnerFactory,
) -> None:
    """Issue 14: PostgreSQL refused the row (SQLSTATE 54000) and the sink retried it for ever, never ready."""
    feed = Feed(topic_catalog_factory())
    await ensure_topics(kafka.bootstrap, feed.catalog)
    long_id = secrets.token_hex(5120)  # incompressible: PostgreSQL cannot index it
    long_event = replace(event(500), payment_id=long_id)
    long_state = replace(state(7, 1), payment_id=long_id)
    bad = [feed.raw(feed.catalog.events, f"stripe:{long_id}", EVENTS.encode(long_event)),
           feed.raw(feed.catalog.state, f"stripe:{long_id}", STATES.encode(long_state))]
    if sink_backend.kind == "postgresql":  # an over-long indexed value the sink does not bound: the database refuses
        huge_status = replace(state(80, 1), status=secrets.token_hex(5120))
        bad.append(feed.raw(feed.catalog.state, "stripe:pay_80", STATES.encode(huge_status)))
    good = [feed.event(event(i)) for i in range(60)] + [feed.state(state(p, 1)) for p in range(10)]
    await send_all(kafka.bootstrap, [*good[:30], *bad, *good[30:]])

    sink = await runner_factory(sink_settings(kafka.bootstrap, feed.catalog, sink_backend.url))
    await eventually(lambda: exact(sink_backend, feed) and sink_backend.count("dead_letters") == len(bad),
                     what="good rows landed, the over-long ones dead-lettered")
    await assert_fully_committed(sink_backend, kafka.bootstrap, feed.catalog)
    rows = sink_backend.rows("SELECT original_topic, original_key, stage, exception_class FROM dead_letters")
    expected = {(feed.catalog.events, f"stripe:{long_id}", "sink", "IdTooLongError"),
                (feed.catalog.state, f"stripe:{long_id}", "sink", "IdTooLongError")}
    if sink_backend.kind == "postgresql":
        expected.add((feed.catalog.state, "stripe:pay_80", "sink", "ProgramLimitExceeded"))
    assert set(rows) == expected
    assert sink.runner.ready
    assert sink.runner.metrics.paused._value.get() == 0
    assert sink.runner.metrics.db_errors.labels("unavailable")._value.get() == 0


@pytest.mark.both_brokers
async def test_restart_resumes_from_the_stored_offsets(
    kafka: Any, topic_catalog_factory: Callable[..., TopicCatalog], db_factory: Callable[..., Db],
    runner_factory: RunnerFactory,
) -> None:
    db = db_factory("sqlite")
    feed = Feed(topic_catalog_factory())
    await ensure_topics(kafka.bootstrap, feed.catalog)
    settings = sink_settings(kafka.bootstrap, feed.catalog, db.url, embedded_broker=kafka.is_embedded)
    await send_all(kafka.bootstrap, [feed.event(event(i)) for i in range(100)])
    first = await runner_factory(settings)
    await eventually(lambda: exact(db, feed), what="first run landed")
    await first.stop()

    await send_all(kafka.bootstrap, [feed.event(event(i)) for i in range(100, 130)])
    # a fresh consumer group: Kafka group offsets can tell it nothing, only sink_offsets can
    second = await runner_factory(settings, group_id=f"{feed.catalog.prefix}other-group")
    await eventually(lambda: exact(db, feed), what="second run landed")
    await assert_fully_committed(db, kafka.bootstrap, feed.catalog)
    assert second.runner.metrics.records._value.get() == 30


async def test_new_broker_incarnation_resets_offsets_and_keeps_rows(
    topic_catalog_factory: Callable[..., TopicCatalog], broker_factory: Callable[..., EmbeddedBroker],
    db_factory: Callable[..., Db], runner_factory: RunnerFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    db = db_factory("sqlite")
    feed = Feed(topic_catalog_factory())
    broker = broker_factory().start()
    await ensure_topics(broker.bootstrap, feed.catalog)
    await send_all(broker.bootstrap, [*(feed.event(event(i)) for i in range(40)),
                                      *(feed.state(state(1, v)) for v in range(1, 6))])
    settings = sink_settings(broker.bootstrap, feed.catalog, db.url)
    first = await runner_factory(settings)
    await eventually(lambda: exact(db, feed), what="first incarnation landed")
    await first.stop()
    old_cluster = broker.cluster_id

    broker.stop()
    reborn = broker_factory(port=broker.port).start()  # same address, empty memory, new cluster id
    assert reborn.cluster_id != old_cluster
    await ensure_topics(reborn.bootstrap, feed.catalog)
    feed.payments.clear()  # the worker's state restarted too: versions begin again
    await send_all(reborn.bootstrap, [feed.event(event(i)) for i in range(40, 45)] + [
        feed.state(state(1, 1, status="created"))])

    caplog.set_level(logging.INFO, logger="paystream.sink")
    second = await runner_factory(settings)
    await eventually(lambda: exact(db, feed), what="second incarnation landed")
    assert db.rows("SELECT version, status, incarnation FROM payments") == [(1, "created", reborn.cluster_id)]
    assert db.count("payment_events") == 45  # rows from the old incarnation are kept
    assert {c for (c,) in db.rows("SELECT DISTINCT cluster_id FROM sink_offsets")} == {reborn.cluster_id}
    assert second.runner.metrics.incarnation_resets._value.get() == 1
    assert any("broker incarnation changed" in r.getMessage() for r in caplog.records)


def test_refuses_to_start_without_a_bootstrap(tmp_path: Any) -> None:
    from paystream.core.settings import Settings

    with pytest.raises(SinkConfigError, match="paystream broker"):
        SinkRunner(Settings(kafka_bootstrap="", sink_url=f"sqlite:///{tmp_path}/x.db"))
