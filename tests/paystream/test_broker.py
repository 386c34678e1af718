"""The embedded broker's lifecycle and one test per measured quirk (DESIGN.md).

Each quirk test fails if its handling in `paystream/core/broker/` is removed.
"""

from __future__ import annotations

import ast
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from paystream.core.broker import (
    CompatConsumer,
    EmbeddedBroker,
    IncarnationMarker,
    consumer_fetch_options,
    consumer_group_options,
    faust_broker_options,
    fetch_cluster_id,
    free_port,
    producer_options,
)
from schemas.topics import TopicCatalog, ensure_topics

ROOT = Path(__file__).resolve().parents[2]


def test_start_stop_leaves_nothing_behind(broker_factory: Any) -> None:
    broker = broker_factory().start()
    pid = broker.pid
    assert pid is not None and broker.running
    broker.stop()
    assert not broker.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_restart_on_same_port_waits_for_the_old_one(broker_factory: Any) -> None:
    first = broker_factory().start()
    port, first_id = first.port, first.cluster_id
    first.stop()
    second = broker_factory(port=port).start()
    assert second.port == port and second.cluster_id != first_id


def test_busy_port_gives_a_clear_error(broker_factory: Any) -> None:
    first = broker_factory().start()
    with pytest.raises(RuntimeError, match="still in use"):
        broker_factory(port=first.port, port_wait_s=0.5).start()


def test_cli_broker_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PAYSTREAM_LOG_FORMAT": "console"}
    process = subprocess.Popen([sys.executable, "-m", "paystream", "broker", "--port", str(port)],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True)
    try:
        deadline = time.monotonic() + 20
        assert process.stderr is not None
        lines = []
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            lines.append(line)
            if "listening on" in line:
                break
        assert any(f"127.0.0.1:{port}" in line for line in lines), lines
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()
    with pytest.raises(OSError):
        import socket

        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


# Quirk 1: no aiokafka idempotence/transactions --------------------------------------------------

async def test_quirk1_producer_options_work_on_the_embedded_broker(kafka: Any, topics: TopicCatalog) -> None:
    if not kafka.is_embedded:
        pytest.skip("embedded-broker quirk")
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, **producer_options(embedded=True))
    await producer.start()
    try:
        metadata = await (await producer.send(topics.raw, b"v", key=b"k"))
        assert metadata.offset >= 0
    finally:
        await producer.stop()
    assert producer_options(embedded=False)["enable_idempotence"] is True
    assert faust_broker_options(embedded=True)["processing_guarantee"] == "at_least_once"


async def test_quirk1_idempotent_aiokafka_producer_cannot_start(kafka: Any) -> None:
    """Documents why the handling exists: InitProducerId fails for aiokafka on Tansu."""
    if not kafka.is_embedded:
        pytest.skip("embedded-broker quirk")
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, enable_idempotence=True, request_timeout_ms=3000)
    with pytest.raises(Exception):  # noqa: B017 - any failure proves the point
        await producer.start()
        await asyncio.wait_for(producer.send_and_wait("quirk1", b"v"), 5)
    await producer.stop()


# Quirk 2: ListOffsets latest is wrong for multi-record batches --------------------------------

async def test_quirk2_end_offsets_from_fetch_high_watermark(kafka: Any, topics: TopicCatalog) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap,
                                **producer_options(embedded=kafka.is_embedded, linger_ms=20))
    await producer.start()
    try:
        futures = [await producer.send(topics.events, b"v%d" % i, key=b"k", partition=1) for i in range(500)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    tps = [TopicPartition(topics.events, p) for p in range(topics.partitions)]
    plain = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap)
    compat = CompatConsumer(bootstrap_servers=kafka.bootstrap)
    await plain.start()
    await compat.start()
    try:
        fixed = await compat.end_offsets(tps)
        raw = await plain.end_offsets(tps)
    finally:
        await plain.stop()
        await compat.stop()
    assert fixed[tps[1]] == 500
    assert all(fixed[tp] == 0 for tp in tps if tp.partition != 1)
    if kafka.is_embedded:
        assert raw[tps[1]] < 500  # the quirk itself: the reason CompatConsumer exists


# Quirk 3: librdkafka consumers stall -> paystream never consumes with confluent_kafka -------------

_LIBRDKAFKA_CONSUMERS = ("Consumer", "DeserializingConsumer", "AIOConsumer", "ShareConsumer",
                         "DeserializingShareConsumer")


def _librdkafka_consumer_uses(tree: ast.AST) -> list[str]:
    """confluent_kafka consumer classes a module imports or reaches as an attribute (its producer is fine)."""
    aliases = {"confluent_kafka"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name.split(".")[0] == "confluent_kafka"}
            found += [a.name for a in node.names if "consumer" in a.name.lower()
                      and a.name.split(".")[0] == "confluent_kafka"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "confluent_kafka":
            found += [f"{node.module}.{a.name}" for a in node.names
                      if a.name in _LIBRDKAFKA_CONSUMERS or "consumer" in node.module.lower()]
        elif isinstance(node, ast.Attribute) and node.attr in _LIBRDKAFKA_CONSUMERS:
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                found.append(node.attr)
    return found


def test_quirk3_no_librdkafka_consumer_in_the_code_base() -> None:
    """Quirk 3 was seen for librdkafka *consumers* only; the ingress's librdkafka producer is allowed."""
    for package in ("paystream", "ingress", "streams", "schemas", "connectors"):
        for path in (ROOT / package).rglob("*.py"):
            assert _librdkafka_consumer_uses(ast.parse(path.read_text("utf-8"))) == [], path
    assert _librdkafka_consumer_uses(ast.parse("from confluent_kafka import Consumer")) == ["confluent_kafka.Consumer"]
    assert _librdkafka_consumer_uses(ast.parse("import confluent_kafka as ck\nck.Consumer({})")) == ["Consumer"]
    assert _librdkafka_consumer_uses(ast.parse("from confluent_kafka.aio import AIOConsumer")) != []
    assert _librdkafka_consumer_uses(ast.parse("from confluent_kafka import Producer")) == []


# Quirk 4: memory only -> incarnations ------------------------------------------------------------

async def test_quirk4_each_start_is_a_new_incarnation(broker_factory: Any, tmp_path: Path) -> None:
    first = broker_factory().start()
    first_id = await fetch_cluster_id(first.bootstrap)
    assert first_id == first.cluster_id
    marker = IncarnationMarker(tmp_path)
    assert not marker.is_stale(first_id)
    marker.write(first_id)
    port = first.port
    first.stop()
    second = broker_factory(port=port).start()
    second_id = await fetch_cluster_id(second.bootstrap)
    assert second_id != first_id
    assert marker.is_stale(second_id)
    admin = AIOKafkaAdminClient(bootstrap_servers=second.bootstrap)
    await admin.start()
    try:
        assert await admin.list_topics() == []  # nothing survived: state built before is stale
    finally:
        await admin.close()


# Quirk 5: first group join waits ~ session timeout / 2 ----------------------------------------

async def test_quirk5_group_join_is_fast_with_short_timeouts(kafka: Any, topics: TopicCatalog) -> None:
    options = consumer_group_options(embedded=kafka.is_embedded)
    consumer = AIOKafkaConsumer(topics.raw, bootstrap_servers=kafka.bootstrap, group_id=f"q5-{time.time_ns()}",
                                **options)
    started = time.monotonic()
    await consumer.start()
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.05)
            assert time.monotonic() - started < options["session_timeout_ms"] / 1000, "join took too long"
    finally:
        await consumer.stop()
    if kafka.is_embedded:
        assert options["session_timeout_ms"] <= 10_000
        assert faust_broker_options(embedded=True)["broker_session_timeout"] <= 10


# Quirk 6: auto-created topics get the broker's default partitions ------------------------------

async def test_quirk6_catalog_topics_are_created_up_front(kafka: Any, topic_catalog_factory: Any) -> None:
    catalog = topic_catalog_factory(partitions=3)
    created = await ensure_topics(kafka.bootstrap, catalog)
    assert sorted(created) == sorted(catalog.name(s) for s in catalog.specs())
    assert await ensure_topics(kafka.bootstrap, catalog) == []
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([catalog.name(s) for s in catalog.specs()])
    finally:
        await admin.close()
    assert {t["topic"]: len(t["partitions"]) for t in described} == {catalog.name(s): 3 for s in catalog.specs()}


def test_context_manager_stops_on_error(broker_factory: Any) -> None:
    broker = broker_factory()
    with pytest.raises(ZeroDivisionError), broker:
        assert broker.running
        1 / 0  # noqa: B018
    assert not broker.running


async def test_async_start(tmp_path: Path) -> None:
    async with EmbeddedBroker(log_path=tmp_path / "b.log") as broker:
        assert await fetch_cluster_id(broker.bootstrap) == broker.cluster_id
    assert not broker.running


# Quirk 8 (found here): a Fetch waits out its whole max_wait even when records arrive ----------

async def _hop_latency_ms(bootstrap: str, topic: str, fetch_max_wait_ms: int) -> float:
    """Median ms from a record's acknowledgement to its arrival at a tailing consumer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **producer_options(embedded=True))
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=fetch_max_wait_ms)
    await producer.start()
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        latencies = []
        for _ in range(12):
            await asyncio.sleep(0.05)  # let the consumer's next fetch be waiting for data
            await producer.send_and_wait(topic, b"v", partition=0)
            sent = time.monotonic()
            while not (await consumer.getmany(tp, timeout_ms=3000)).get(tp):
                pass
            latencies.append((time.monotonic() - sent) * 1000)
        return sorted(latencies)[len(latencies) // 2]
    finally:
        await consumer.stop()
        await producer.stop()


async def test_quirk8_short_fetch_wait_bounds_each_hop(kafka: Any, topics: TopicCatalog) -> None:
    if not kafka.is_embedded:
        pytest.skip("embedded-broker quirk")
    ours = consumer_fetch_options(embedded=True)["fetch_max_wait_ms"]
    assert consumer_group_options(embedded=True)["fetch_max_wait_ms"] == ours
    faust_default = await _hop_latency_ms(kafka.bootstrap, topics.dlq, 1500)  # Faust's hard-coded wait
    with_ours = await _hop_latency_ms(kafka.bootstrap, topics.dlq, ours)
    assert faust_default > 3 * with_ours, (faust_default, with_ours)  # the quirk, and its handling
    assert with_ours <= ours + 50
