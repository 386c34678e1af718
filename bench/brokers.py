"""The brokers a benchmark runs on: the embedded broker and Apache Kafka, one report column each.

`BENCH_BROKERS` (default `embedded,apache-kafka`) picks which; both run in the same invocation with
the same parameters. Apache Kafka 4.1 is one combined KRaft node from the Maven-fetched jars
(`paystream/dev/apache_kafka.py`, `scripts/kafka.sh`); its JVM is killed when the block ends, also
on an error. Every run against it uses the real settings: `PAYSTREAM_EMBEDDED_BROKER=false`, so
idempotent producers and Faust's defaults, none of the embedded-broker workarounds; and its JVM runs with
the heap and options of Kafka's own start script (`KAFKA_START_*`), not the tests' fast-starting JIT.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from paystream.core.broker import EmbeddedBroker
from paystream.dev.apache_kafka import ApacheKafka
from schemas.topics import TopicCatalog, ensure_topics

EMBEDDED = "embedded"
APACHE_KAFKA = "apache-kafka"
LABELS = {EMBEDDED: "embedded", APACHE_KAFKA: "Apache Kafka"}
"""Report column per broker."""


KAFKA_START_HEAP = "-Xmx1G -Xms1G"
KAFKA_START_JVM = ("-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 "
                   "-XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15")
"""The heap and JVM options Apache Kafka's own `kafka-server-start.sh` gives a broker: a benchmark measures
Kafka as it is run, not with the tests' fast-starting JIT (`scripts/kafka.sh`), which costs more CPU per record."""


WARM_UP_RECORDS = 200_000
"""Records sent through a scratch topic and read back before a benchmark uses Apache Kafka, so its JIT has
compiled the produce and fetch paths as a broker that has been running has: cold, it used 35-38 CPU s in
bench-e2e's first 60 s run against 15-18 s in the next ones (2026-12-07). Only the broker is warmed; the
pipeline under test starts cold, as before."""


def selected() -> list[str]:
    kinds = [k.strip() for k in os.environ.get("BENCH_BROKERS", f"{EMBEDDED},{APACHE_KAFKA}").split(",") if k.strip()]
    unknown = set(kinds) - set(LABELS)
    if unknown:
        raise SystemExit(f"BENCH_BROKERS: unknown {sorted(unknown)}; choose from {sorted(LABELS)}")
    return kinds


def is_embedded(kind: str) -> bool:
    return kind == EMBEDDED


def env_for(kind: str, bootstrap: str) -> dict[str, str]:
    """The environment that points a `paystream` process at this broker with its real settings."""
    return {"PAYSTREAM_KAFKA_BOOTSTRAP": bootstrap, "PAYSTREAM_EMBEDDED_BROKER": str(is_embedded(kind)).lower()}


@dataclass(frozen=True)
class RunningBroker:
    bootstrap: str
    pid: int
    """The broker's own process (the embedded binary, or Apache Kafka's JVM), for CPU accounting."""


@contextmanager
def broker(kind: str, catalogs: tuple[TopicCatalog, ...] = ()) -> Iterator[str]:
    """Start it, create `catalogs`' topics, yield the bootstrap; stop it (the JVM too) however the block ends."""
    with running(kind, catalogs) as started:
        yield started.bootstrap


@contextmanager
def running(kind: str, catalogs: tuple[TopicCatalog, ...] = (), *,
            warm_up_records: int = WARM_UP_RECORDS) -> Iterator[RunningBroker]:
    """As `broker()`, yielding the process id too; Apache Kafka after its warm-up (`WARM_UP_RECORDS`)."""
    if is_embedded(kind):
        with EmbeddedBroker() as embedded:
            _create(embedded.bootstrap, catalogs)
            assert embedded.pid is not None
            yield RunningBroker(embedded.bootstrap, embedded.pid)
        return
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as workdir:
        node = ApacheKafka(Path(workdir), nodes=1, heap=KAFKA_START_HEAP, jvm_options=KAFKA_START_JVM)
        try:
            node.start()
            if warm_up_records:
                asyncio.run(warm_up(node.bootstrap, warm_up_records))
            _create(node.bootstrap, catalogs)
            process = node.nodes[0].process
            assert process is not None
            yield RunningBroker(node.bootstrap, process.pid)
        finally:
            node.stop()


def _create(bootstrap: str, catalogs: tuple[TopicCatalog, ...]) -> None:
    for catalog in catalogs:
        asyncio.run(ensure_topics(bootstrap, catalog))


async def warm_up(bootstrap: str, records: int = WARM_UP_RECORDS, partitions: int = 8) -> int:
    """Send `records` through a new scratch topic (idempotent producer, as the pipeline's) and read them back;
    returns how many were read."""
    topic = f"bench.jvm-warm-up-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=1)
    await producer.start()
    try:
        value = b"w" * 300
        for n in range(records):
            await producer.send(topic, value, key=n.to_bytes(4, "big"))
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    read = 0
    try:
        while read < records:
            batches = await consumer.getmany(timeout_ms=1000)
            if not batches:
                break
            read += sum(len(batch) for batch in batches.values())
    finally:
        await consumer.stop()
    return read
