"""`make bench-embedded-fetch`: does a fetch from the embedded broker cost more as a partition's history grows?

Why it exists: `make bench-e2e` on the embedded broker got slower run after run on one running
pipeline (p50 166 -> 307 ms over two quiet 60 s runs on 2026-12-05), with nothing in paystream's own
processes growing to match. This isolates the broker: one producer appends single-record batches
(what the ingress makes at 500 req/s over 8 partitions) to partition `grown`, and at each size a
consumer times 20 round trips (send one record, fetch it from the tail) on `grown` and on a
partition `small` that holds only those probe records. If `grown`'s time rises with its size while
`small`'s stays flat, the broker's fetch is linear in a partition's stored batches.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import interrupt_on_sigterm, write_report
from paystream.core.broker.process import EmbeddedBroker

SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "2000,10000,20000,40000").split(",")]
PROBES = 20


async def tail_round_trips(producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, topic: str,
                           next_offset: int) -> list[float]:
    """Milliseconds from sending one record to fetching it, `PROBES` times, reading from the tail."""
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    times: list[float] = []
    for n in range(PROBES):
        consumer.seek(tp, next_offset + n)
        start = time.monotonic()
        await producer.send_and_wait(topic, b"probe")
        fetched = await consumer.getmany(tp, timeout_ms=5000)
        times.append((time.monotonic() - start) * 1000)
        if sum(len(records) for records in fetched.values()) != 1:
            raise RuntimeError(f"{topic}: the probe record did not come back")
    return times


async def measure() -> list[tuple[int, float, float, float, float]]:
    rows: list[tuple[int, float, float, float, float]] = []
    with EmbeddedBroker() as broker:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic("grown", 1, 1), NewTopic("small", 1, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                                    fetch_max_wait_ms=100)  # the worker's short fetch wait
        await producer.start()
        await consumer.start()
        try:
            grown = small = 0
            for size in SIZES:
                while grown < size:
                    await producer.send_and_wait("grown", b"x" * 200)  # one record per batch, as the ingress
                    grown += 1
                on_grown = await tail_round_trips(producer, consumer, "grown", grown)
                on_small = await tail_round_trips(producer, consumer, "small", small)
                grown, small = grown + PROBES, small + PROBES
                rows.append((size, statistics.median(on_grown), max(on_grown),
                             statistics.median(on_small), max(on_small)))
                print(f"{size:>6} batches: grown p50 {rows[-1][1]:.1f} ms, small p50 {rows[-1][3]:.1f} ms", flush=True)
        finally:
            await producer.stop()
            await consumer.stop()
    return rows


def main() -> None:
    rows = asyncio.run(measure())
    table = "\n".join(f"| {size} | {g50:.1f} | {gmax:.1f} | {s50:.1f} | {smax:.1f} |"
                      for size, g50, gmax, s50, smax in rows)
    first, last = rows[0], rows[-1]
    slope = (last[1] - first[1]) / (last[0] - first[0]) * 1000
    verdict = (f"grown's median round trip rose {last[1] - first[1]:.1f} ms from {first[0]} to {last[0]} batches "
               f"(~{slope:.2f} ms per 1,000 batches); small's moved {last[3] - first[3]:+.1f} ms")
    print(verdict)
    path = write_report("embedded_fetch", "Embedded broker: fetch time against a partition's stored batches", f"""
One embedded broker (the `make run` default), one producer appending single-record batches to partition
`grown`; at each size, {PROBES} round trips (send one record, fetch it from the tail with aiokafka) on
`grown` and on `small` (which holds only the probe records). Times in ms; the floor of about 50 ms is the
consumer's fetch cycle (100 ms fetch wait, as the worker's) after a seek, the same on both partitions.

| batches in `grown` | `grown` p50 | `grown` max | `small` p50 | `small` max |
|---:|---:|---:|---:|---:|
{table}

{verdict}.

What it means for `make bench-e2e`: at 500 req/s the ingress writes about 62 single-record batches per
second to each of the raw topic's 8 partitions, so five back-to-back 60 s runs leave ~19,000 batches per
partition, and every fetch of those partitions pays for all of them. Latency on one long-running embedded
broker therefore grows with its history; Apache Kafka's fetch locates an offset through its segment index
and does not.
""")
    print(f"report: {path}")


if __name__ == "__main__":
    interrupt_on_sigterm()
    main()
