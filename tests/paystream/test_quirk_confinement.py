"""The embedded broker's workarounds run only when PAYSTREAM_EMBEDDED_BROKER is true (issue 15).

Apache Kafka has none of the quirks, and some workarounds would be wrong there: the high watermark
that `CompatConsumer` reads is past the last stable offset under `read_committed`, and idempotence
is what Apache Kafka's producers should have. These tests start real processes on Apache Kafka and
check that nothing of the compatibility layer is installed or called.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from paystream.core.broker import CompatConsumer, consumer_group_options, faust_broker_options, producer_options
from paystream.core.broker import compat as broker_compat
from paystream.core.settings import DEFAULT_PARTITIONS, Settings
from schemas.topics import TopicCatalog, ensure_topics
from tests.fixtures.streams import WorkerProcess

pytestmark = pytest.mark.broker

PROBE = """
import asyncio, json, sys
from paystream.core.settings import Settings
from streams.app import create_worker
from streams.compat import embedded_broker_compat_installed
settings = Settings.from_env(data_dir=sys.argv[1])
app = create_worker(settings).app

async def worker_consumer():  # the consumer Faust builds for the worker (not started: nothing connects)
    return app.consumer._thread._create_worker_consumer(app.transport)

consumer = asyncio.run(worker_consumer())
print(json.dumps({"patched": embedded_broker_compat_installed(),
                  "fetch_max_wait_ms": consumer._fetch_max_wait_ms,
                  "group_timeouts_ms": [consumer._session_timeout_ms, consumer._heartbeat_interval_ms],
                  "guarantee": str(app.conf.processing_guarantee),
                  "session_timeout_s": app.conf.broker_session_timeout}))
"""


def probe_worker(tmp_path: Path, embedded: str, **settings: str) -> dict[str, Any]:
    """Build the Faust app in a fresh interpreter (the patch is process-wide) and report what it installed."""
    env = {"PATH": "/usr/bin:/bin", "PAYSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:9", "PAYSTREAM_EMBEDDED_BROKER": embedded,
           **settings}
    result = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / embedded)], env=env, capture_output=True,
                            text=True, timeout=120, check=True, cwd=Path(__file__).resolve().parents[2])
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_the_faust_patches_follow_the_setting(tmp_path: Path) -> None:
    """`_highwaters` (quirk 2) is patched on the embedded broker only; the worker consumer's fetch wait is short
    on both (Faust hard-codes 1500 ms): quirk 8 there, a Fetch for only empty partitions on Apache Kafka."""
    apache = probe_worker(tmp_path, "false")
    assert (apache["patched"], apache["fetch_max_wait_ms"]) == (False, broker_compat.KAFKA_WORKER_FETCH_MAX_WAIT_MS)
    embedded = probe_worker(tmp_path, "true")
    assert (embedded["patched"], embedded["fetch_max_wait_ms"]) == (True, broker_compat.EMBEDDED_FETCH_MAX_WAIT_MS)


def test_the_group_session_follows_its_setting_on_apache_kafka_only(tmp_path: Path) -> None:
    """`PAYSTREAM_GROUP_SESSION_TIMEOUT_S` reaches the consumer Faust builds; the embedded broker keeps 6 s."""
    assert probe_worker(tmp_path, "false")["group_timeouts_ms"] == [30_000, 3_000]
    assert probe_worker(tmp_path, "false", PAYSTREAM_GROUP_SESSION_TIMEOUT_S="7.5")["group_timeouts_ms"] == \
        [7_500, 2_500]
    assert probe_worker(tmp_path, "true", PAYSTREAM_GROUP_SESSION_TIMEOUT_S="20")["group_timeouts_ms"] == \
        [broker_compat.EMBEDDED_SESSION_TIMEOUT_MS, broker_compat.EMBEDDED_HEARTBEAT_MS]
    sink = consumer_group_options(embedded=False, session_timeout_ms=12_000)
    assert (sink["session_timeout_ms"], sink["heartbeat_interval_ms"]) == (12_000, 3_000)


def test_the_client_options_have_no_workaround_for_apache_kafka() -> None:
    assert Settings(kafka_bootstrap="kafka:9092", embedded_broker=False).partitions == DEFAULT_PARTITIONS == 8
    assert producer_options(embedded=False)["enable_idempotence"] is True
    group = consumer_group_options(embedded=False)
    assert group["fetch_max_wait_ms"] == 500  # aiokafka's default: Apache Kafka wakes a waiting Fetch
    assert group["session_timeout_ms"] > broker_compat.EMBEDDED_SESSION_TIMEOUT_MS
    assert faust_broker_options(embedded=False)["broker_session_timeout"] > 10


@pytest.mark.both_brokers
def test_a_worker_on_the_session_broker_reports_its_workarounds(
        kafka: Any, worker_factory: Callable[..., WorkerProcess]) -> None:
    """A real `paystream worker`: patched on the embedded broker, untouched on Apache Kafka."""
    worker = worker_factory()
    [ready] = [line for line in worker.log_path.read_text().splitlines() if "worker ready" in line]
    assert f"embedded_broker={kafka.is_embedded}" in ready, ready
    assert f"embedded_broker_compat={kafka.is_embedded}" in ready, ready


async def test_compat_consumer_is_a_plain_consumer_on_apache_kafka(
        apache_kafka: Any, topic_catalog_factory: Callable[..., TopicCatalog],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Multi-record batches (the shape of quirk 2): ListOffsets alone is right, no Fetch is sent for it."""
    catalog = topic_catalog_factory(partitions=2)
    await ensure_topics(apache_kafka.bootstrap, catalog)
    producer = AIOKafkaProducer(bootstrap_servers=apache_kafka.bootstrap,
                                **producer_options(embedded=False, linger_ms=20))
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(catalog.raw, b"v", key=b"k%d" % i, partition=i % 2)
                               for i in range(500)])
    finally:
        await producer.stop()

    async def no_fetch(*args: Any) -> Any:
        raise AssertionError("the embedded-broker high-watermark Fetch ran against Apache Kafka")

    monkeypatch.setattr(broker_compat, "fetch_high_watermarks", no_fetch)
    consumer = CompatConsumer(bootstrap_servers=apache_kafka.bootstrap, embedded=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(catalog.raw, 0), TopicPartition(catalog.raw, 1)])
    finally:
        await consumer.stop()
    assert sorted(ends.values()) == [250, 250]


def test_the_ingress_lingers_longer_only_on_the_embedded_broker() -> None:
    """Quirk 9: 100 ms there, 1 ms on Apache Kafka; PAYSTREAM_PUBLISH_LINGER_MS, when set, wins on either."""
    assert broker_compat.publish_linger_ms(embedded=False) == broker_compat.KAFKA_PUBLISH_LINGER_MS == 1
    assert broker_compat.publish_linger_ms(embedded=True) == broker_compat.EMBEDDED_PUBLISH_LINGER_MS == 100
    assert broker_compat.publish_linger_ms(embedded=True, configured=0) == 0
    assert broker_compat.publish_linger_ms(embedded=False, configured=20) == 20
