"""Factories for sink tests: migrated databases on both backends, sinks, runners, feeds.

PostgreSQL tests get a fresh schema each (`search_path` in the URL), dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from connectors.base import SinkRecord
from connectors.database import DatabaseSink
from connectors.runner import SinkRunner
from connectors.targets import create_sink
from paystream.core.broker import CompatConsumer, producer_options
from paystream.core.settings import Settings
from schemas.topics import TopicCatalog
from tests.connectors.factories import Feed
from tests.fixtures.databases import Db


@pytest.fixture
def feed(topic_catalog_factory: Callable[..., TopicCatalog]) -> Feed:
    return Feed(topic_catalog_factory())


@pytest.fixture
async def sink_factory() -> AsyncIterator[Callable[..., Awaitable[DatabaseSink]]]:
    """Started sinks (no Kafka) on a database; stopped at teardown."""
    sinks: list[DatabaseSink] = []

    async def make(db: Db, catalog: TopicCatalog, *, cluster_id: str = "cluster-a", **kwargs: Any) -> DatabaseSink:
        sink = create_sink(db.url, catalog, **kwargs)
        await sink.start()
        await sink.use_incarnation(cluster_id)
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.stop()


def sink_settings(bootstrap: str, catalog: TopicCatalog, url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": bootstrap, "topic_prefix": catalog.prefix, "partitions": catalog.partitions,
        "sink_url": url, "sink_metrics_port": 0, "embedded_broker": True, "sink_batch_size": 500,
        "sink_batch_ms": 100,
    }
    return Settings(**(values | overrides))


@dataclass
class RunningSink:
    """A `SinkRunner` running as a task in this event loop."""

    runner: SinkRunner
    stop_event: asyncio.Event
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(asyncio.shield(self.task), 30)


@pytest.fixture
async def runner_factory() -> AsyncIterator[Callable[..., Awaitable[RunningSink]]]:
    """In-process sink runners (real broker, real database); all stopped at teardown."""
    running: list[RunningSink] = []

    async def make(settings: Settings, *, wait_ready: bool = True, group_id: str | None = None) -> RunningSink:
        runner = SinkRunner(settings, group_id=group_id)
        stop = asyncio.Event()
        item = RunningSink(runner, stop, asyncio.create_task(runner.run(stop)))
        running.append(item)
        deadline = time.monotonic() + 30
        while wait_ready and not runner.ready:
            if item.task.done():
                item.task.result()
            assert time.monotonic() < deadline, "sink did not become ready"
            await asyncio.sleep(0.05)
        return item

    yield make
    for item in running:
        item.stop_event.set()
    for item in running:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(item.task, 30)


async def eventually(check: Callable[[], bool], *, timeout_s: float = 30.0, what: str = "condition") -> None:
    """Poll `check` (which may hit a database) until it holds."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if await asyncio.to_thread(check):
                return
        except (psycopg.Error, sqlite3.Error) as exc:
            last = exc
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last!r})" if last else ""))


async def send_all(bootstrap: str, records: Iterable[SinkRecord]) -> None:
    """Publish records (partition chosen by key, as the worker does) and wait for every ack."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **producer_options(embedded=True, linger_ms=5))
    await producer.start()
    try:
        futures = [await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers) or None)
                   for r in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """Log-end offset of every non-empty partition (Fetch high watermark, quirk 2)."""
    consumer = CompatConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(await consumer._client._wait_on_metadata(t))]
        ends = await consumer.end_offsets(partitions)
        return {(tp.topic, tp.partition): int(o) for tp, o in ends.items() if o}
    finally:
        await consumer.stop()


PAYSTREAM_BIN = Path(sys.executable).parent / "paystream"


def sink_env(settings: Settings) -> dict[str, str]:
    """The environment of a `paystream sink` child process with these settings (and nothing inherited)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYSTREAM_")}
    return env | settings.to_env() | {"PAYSTREAM_LOG_FORMAT": "console"}


@pytest.fixture
def sink_process_factory(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """`paystream sink` child processes; every one is killed and reaped at teardown."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"sink-{len(processes)}.log").open("wb")
        process = subprocess.Popen([str(PAYSTREAM_BIN), "sink", *args], env=sink_env(settings),
                                   stdout=log, stderr=subprocess.STDOUT)
        log.close()
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)
