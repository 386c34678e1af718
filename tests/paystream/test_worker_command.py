"""`paystream worker` stops within `PAYSTREAM_WORKER_STOP_TIMEOUT_S`, also when its broker is gone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paystream.core.broker import EmbeddedBroker, free_port
from paystream.dev.scenarios import stripe_payment_intent
from schemas.topics import TopicCatalog
from tests.fixtures.streams import EnvelopeFactory, WorkerProcess, raw_publisher

UNCLEAN = "exiting without a clean stop"


def start_worker(env: dict[str, str], broker: EmbeddedBroker, tmp_path: Path, stop_timeout_s: float) -> WorkerProcess:
    port = free_port()
    worker = WorkerProcess("worker", ["worker"], {**env, "PAYSTREAM_KAFKA_BOOTSTRAP": broker.bootstrap,
                                                  "PAYSTREAM_WORKER_PORT": str(port),
                                                  "PAYSTREAM_WORKER_STOP_TIMEOUT_S": str(stop_timeout_s)},
                           port, tmp_path / "worker.log")
    return worker.start().wait_ready()


async def test_a_stop_against_an_unreachable_broker_ends_at_the_timeout(
        stream_env: dict[str, str], broker_factory: Callable[..., Any], tmp_path: Path,
        envelope_factory: EnvelopeFactory) -> None:
    """The worker has handled records (offsets to commit, a producer that sent), then its broker freezes
    (SIGSTOP: it answers nothing), so the stop's requests wait out their timeouts. Stopping a worker that had
    handled nothing, against a killed broker, sometimes ended cleanly in time (which is right; the test then
    failed once on 2026-12-07)."""
    broker = broker_factory().start()
    worker = start_worker(stream_env, broker, tmp_path, stop_timeout_s=5)
    try:
        raw = TopicCatalog(prefix=stream_env["PAYSTREAM_TOPIC_PREFIX"]).raw
        async with raw_publisher(broker.bootstrap, raw, embedded=True) as publish:
            await publish(*(envelope_factory(stripe_payment_intent(
                "payment_intent.succeeded", f"pi_stop_{n}", amount=100, currency="USD", created=1_790_000_000).body)
                for n in range(20)))
        deadline = time.monotonic() + 30
        while worker.get("/dedup/stats").json()["new"] < 20:
            assert time.monotonic() < deadline, worker.tail()
            await asyncio.sleep(0.2)
        broker.pause()
        started = time.monotonic()
        code = await asyncio.to_thread(worker.stop, 60)  # without the bound: 63 s measured, minutes on Apache Kafka
        took = time.monotonic() - started
    finally:
        worker.kill()
        broker.resume()
    assert code == 1, worker.tail()
    assert 5 <= took < 20, took
    assert UNCLEAN in worker.tail(), worker.tail()


def test_a_healthy_stop_is_clean(stream_env: dict[str, str], broker_factory: Callable[..., Any],
                                 tmp_path: Path) -> None:
    broker = broker_factory().start()
    worker = start_worker(stream_env, broker, tmp_path, stop_timeout_s=30)
    try:
        code = worker.stop(timeout_s=60)
    finally:
        worker.kill()
    assert code == 0, worker.tail()
    assert UNCLEAN not in worker.tail()


def test_a_worker_refuses_topics_with_another_partition_count(worker_factory: Callable[..., WorkerProcess],
                                                             topics: TopicCatalog) -> None:
    """The worker routes payment keys to state partitions by PAYSTREAM_PARTITIONS: on topics with another count
    it would send them to the wrong partition, so it stops before it starts, and says what to set."""
    worker = worker_factory(ready=False, PAYSTREAM_PARTITIONS=str(topics.partitions + 1))
    assert worker.process is not None
    assert worker.process.wait(timeout=60) != 0
    log = worker.tail()
    assert f"another partition count than the configured {topics.partitions + 1}" in log, log
    assert f"{topics.raw} has {topics.partitions}" in log, log
    assert "Set PAYSTREAM_PARTITIONS" in log, log
