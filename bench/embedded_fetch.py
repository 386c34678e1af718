"""`make bench-embedded-fetch`: does a fetch from the embedded broker cost more as a partition's history grows?

Why it exists: `make bench-e2e` on the embedded broker got slower run after run on one running
pipeline (p50 166 -> 307 ms over two quiet 60 s runs on 2026-12-05), with nothing in paystream's own
processes growing to match. This isolates the broker: one producer appends single-record batches
(what the ingress makes at 500 req/s over 8 partitions) to partition `grown`, and at each size a
consumer times 20 round trips (send one record, fetch it from the tail) on `grown` and on a
partition `small` that holds only those probe records. If `grown`'s time rises with its size while
`small`'s stays flat, the broker's fetch is linear in a partition's stored batches.

The second part measures what that costs the broker in CPU under a bench-e2e-like load: a producer
writes 10 single-record batches per second to each of 8 partitions of `tailed` while a consumer tails
them with the worker's 100 ms fetch wait, first on empty partitions and then at each `BENCH_TAILED`
size; the broker's CPU per second of that load is read from /proc.
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

from bench.cpu import tree_cpu_s
from bench.machine import interrupt_on_sigterm, write_report
from paystream.core.broker import consumer_fetch_options
from paystream.core.broker.process import EmbeddedBroker

SIZES = [int(n) for n in os.environ.get("BENCH_SIZES", "2000,10000,20000,40000").split(",")]
PROBES = 20
TAILED_SIZES = [int(n) for n in os.environ.get("BENCH_TAILED", "1500,3000").split(",")]
TAILED_PARTITIONS = 8
TAILED_RATE = 10  # batches per second per partition: the ingress's 100 ms linger at 500 req/s
TAILED_SECONDS = 8.0
FETCH = consumer_fetch_options(embedded=True)  # every consumer's fetch wait on the embedded broker, the worker's too
WAIT_MS = FETCH["fetch_max_wait_ms"]


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
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, **FETCH)
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


async def append_batches(producer: AIOKafkaProducer, topic: str, per_partition: int,
                         stop: asyncio.Event | None = None) -> int:
    """Single-record batches to every partition of `topic`: `per_partition` of them as fast as acknowledged,
    or, with `stop`, `TAILED_RATE` per second each until it is set. Returns the most any partition got."""
    async def partition(p: int) -> int:
        start, sent = time.monotonic(), 0
        while (sent < per_partition) if stop is None else not stop.is_set():
            await producer.send_and_wait(topic, b"x" * 300, partition=p)
            sent += 1
            if stop is not None and (delay := start + sent / TAILED_RATE - time.monotonic()) > 0:
                await asyncio.sleep(delay)
        return sent
    return max(await asyncio.gather(*(partition(p) for p in range(TAILED_PARTITIONS))))


async def tail_cpu(broker: EmbeddedBroker, producer: AIOKafkaProducer) -> tuple[float, int]:
    """Broker CPU ms per second while `tailed` takes TAILED_RATE batches/s per partition and one consumer tails
    it, and the batches per partition that load appended."""
    if broker.pid is None:
        raise RuntimeError("the broker is not running")
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, **FETCH)
    await consumer.start()
    partitions = [TopicPartition("tailed", p) for p in range(TAILED_PARTITIONS)]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    stop = asyncio.Event()
    writing = asyncio.create_task(append_batches(producer, "tailed", 0, stop))
    try:
        async def read() -> None:
            while not stop.is_set():
                await consumer.getmany(timeout_ms=200)
        reading = asyncio.create_task(read())
        await asyncio.sleep(1.0)  # settle into the steady rhythm first
        before, start = tree_cpu_s(broker.pid), time.monotonic()
        await asyncio.sleep(TAILED_SECONDS)
        used, elapsed = tree_cpu_s(broker.pid) - before, time.monotonic() - start
        stop.set()
        appended, _ = await asyncio.gather(writing, reading)
    finally:
        stop.set()
        await consumer.stop()
    return used / elapsed * 1000, appended


async def measure_cpu() -> list[tuple[int, float]]:
    """(batches stored per partition of `tailed` at the start, broker CPU ms/s while tailing it)."""
    rows: list[tuple[int, float]] = []
    with EmbeddedBroker() as broker:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic("tailed", TAILED_PARTITIONS, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
        await producer.start()
        try:
            stored = 0
            for size in [0, *TAILED_SIZES]:
                stored += await append_batches(producer, "tailed", max(size - stored, 0))
                at_start = stored
                ms_per_s, appended = await tail_cpu(broker, producer)
                stored += appended
                rows.append((at_start, ms_per_s))
                print(f"{at_start:>6} batches per partition: broker {ms_per_s:.0f} ms CPU per s", flush=True)
        finally:
            await producer.stop()
    return rows


def main() -> None:
    rows = asyncio.run(measure())
    cpu_rows = asyncio.run(measure_cpu())
    cpu_table = "\n".join(f"| {size} | {ms:.0f} |" for size, ms in cpu_rows)
    cpu_slope = (cpu_rows[-1][1] - cpu_rows[0][1]) / (cpu_rows[-1][0] - cpu_rows[0][0]) * 1000
    cpu_verdict = (f"The broker's CPU under the same load rose from {cpu_rows[0][1]:.0f} to {cpu_rows[-1][1]:.0f} ms "
                   f"per second at {cpu_rows[-1][0]} stored batches per partition (~{cpu_slope:.0f} ms per second "
                   f"per 1,000 batches per partition, {TAILED_PARTITIONS} partitions fetched about "
                   f"{1000 // WAIT_MS} times a second)")
    print(cpu_verdict)
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
consumer's fetch cycle ({WAIT_MS} ms fetch wait, as the worker's) after a seek, the same on both
partitions.
The round trip lines up with that cycle, so a slower listing can also push a probe's fetch into a
later cycle and its median back to the floor (watch the max); the CPU table below is the steadier measure.

| batches in `grown` | `grown` p50 | `grown` max | `small` p50 | `small` max |
|---:|---:|---:|---:|---:|
{table}

{verdict}.

Broker CPU while {TAILED_PARTITIONS} partitions of `tailed` each take {TAILED_RATE} single-record batches per second and
one consumer tails them ({WAIT_MS} ms fetch wait), {TAILED_SECONDS:.0f} s per size, by the batches each
partition held when the load began:

| batches per partition | broker CPU, ms per s |
|---:|---:|
{cpu_table}

{cpu_verdict}: a fetch costs the broker for every batch the partition has stored, however far behind the
consumer's offset they are.

What it means for `make bench-e2e`: the ingress lingers 100 ms on the embedded broker, so at 500 req/s each
raw partition gets about 8-10 batches a second (~2,500 after five back-to-back 60 s runs), and the events
and state topics the worker writes about as many. The worker and the sink fetch five such topics' partitions
about ten times a second, and every fetch pays for every batch stored: by the last runs that is more than a
core of broker CPU. Latency on one long-running embedded broker therefore grows with its history; Apache
Kafka's fetch locates an offset through its segment index and does not.
""")
    print(f"report: {path}")


if __name__ == "__main__":
    interrupt_on_sigterm()
    main()
