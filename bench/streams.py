"""`make bench-streams`: N pre-published raw envelopes through one worker, against two floors.

(a) a plain aiokafka consume→produce loop over the same records (the limit for Python),
(b) a forward-only Faust agent (Faust's own floor: one `await topic.send` per event),
then the full path — `paystream worker` (dedup + normalize + payment state, RocksDB tables,
changelogs) — as a real process. Reports events/s and the worker's RSS, and last
`full path: <N> events/s`. The full path runs with reconciliation off (issue 3's
definition) and again with it on, to report what it adds per event. A last run fills the
dedup table with `BENCH_DEDUP_KEYS` (default 1,000,000) keys and reports the RSS there.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import write_report
from paystream.core.broker import EmbeddedBroker, free_port, producer_options
from paystream.dev.scenarios import scenario
from schemas.clock import now_ms
from schemas.records import WebhookEnvelope
from schemas.serde import envelope_serde
from schemas.topics import TopicCatalog, ensure_topics

N = int(os.environ.get("BENCH_EVENTS", "50000"))
DEDUP_KEYS = int(os.environ.get("BENCH_DEDUP_KEYS", "1000000"))
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "8"))
ROOT = Path(__file__).resolve().parents[1]


def envelopes(count: int, seed: int = 1) -> list[WebhookEnvelope]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    made: list[WebhookEnvelope] = []
    n = 0
    while len(made) < count:
        provider = rng.choice(["stripe", "paypal"])
        for delivery in scenario(rng.choice(["checkout", "refund", "dispute"]), provider, rng=rng,
                                 start=start + timedelta(seconds=n), amount=rng.randint(100, 90_000)):
            made.append(WebhookEnvelope(
                envelope_id=f"00000000-0000-4000-8000-{len(made):012d}", provider=provider, source=provider,
                provider_event_id=delivery.event_id, event_type=delivery.event_type, received_at=now_ms(),
                verified_by="bench", body=delivery.body, content_type="application/json"))
        n += 1
    return made[:count]


async def publish(bootstrap: str, topic: str, items: list[WebhookEnvelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=262144, linger_ms=5,
                                **{k: v for k, v in producer_options(embedded=True).items() if k != "linger_ms"})
    await producer.start()
    serde = envelope_serde()
    try:
        for start in range(0, len(items), 5000):
            futures = [await producer.send(topic, serde.encode(e), key=e.key.encode())
                       for e in items[start:start + 5000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def plain_loop(bootstrap: str, source: str, target: str, count: int) -> float:
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=f"bench-plain-{time.time_ns()}",
                                auto_offset_reset="earliest", session_timeout_ms=6000, rebalance_timeout_ms=4000,
                                max_poll_records=2000)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **producer_options(embedded=True))
    await consumer.start()
    await producer.start()
    seen = 0
    started = 0.0
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            if batch and not started:
                started = time.perf_counter()
            futures = []
            for records in batch.values():
                for record in records:
                    futures.append(await producer.send(target, record.value, key=record.key))
            await asyncio.gather(*futures)
            seen += len(futures)
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        await producer.stop()


FORWARD_APP = '''
import os, time, faust
from paystream.core.broker.compat import faust_broker_options
from streams.compat import install_embedded_broker_compat
install_embedded_broker_compat()
app = faust.App("bench-forward-%s" % os.environ["RUN"], broker="kafka://" + os.environ["BS"], store="memory://",
                key_serializer="raw", value_serializer="raw", web_enabled=False, consumer_auto_offset_reset="earliest",
                producer_linger=0.001, **faust_broker_options(embedded=True))
source = app.topic(os.environ["SRC"], key_type=bytes, value_type=bytes)
target = app.topic(os.environ["DST"], key_type=bytes, value_type=bytes)
N = int(os.environ["N"]); state = {"n": 0, "t": None}
@app.agent(source)
async def forward(stream):
    async for event in stream.events():
        if state["t"] is None:
            state["t"] = time.perf_counter()
        await target.send(key=event.key, value=event.value)
        state["n"] += 1
        if state["n"] == N:
            open(os.environ["OUT"], "w").write(str(N / (time.perf_counter() - state["t"])))
'''


def faust_forward(bootstrap: str, source: str, target: str, count: int) -> float:
    folder = Path(tempfile.mkdtemp())
    (folder / "forward_app.py").write_text(FORWARD_APP)
    out = folder / "result"
    env = {**os.environ, "BS": bootstrap, "SRC": source, "DST": target, "N": str(count), "OUT": str(out),
           "RUN": str(time.time_ns()), "PYTHONPATH": f"{folder}:{ROOT}"}
    process = subprocess.Popen([sys.executable, "-m", "faust", "-A", "forward_app", "worker", "-l", "warn",
                                "--without-web"], env=env, cwd=folder, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        return float(out.read_text())
    finally:
        process.terminate()
        process.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def metric(url: str, name: str, label: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name) and label in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def run_worker(bootstrap: str, prefix: str, expected_raw: int, extra_env: dict[str, str]) -> dict[str, float]:
    port = free_port()
    data = Path(tempfile.mkdtemp())
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PAYSTREAM_")},
           "PAYSTREAM_KAFKA_BOOTSTRAP": bootstrap, "PAYSTREAM_EMBEDDED_BROKER": "true",
           "PAYSTREAM_TOPIC_PREFIX": prefix, "PAYSTREAM_PARTITIONS": str(PARTITIONS),
           "PAYSTREAM_DATA_DIR": str(data), "PAYSTREAM_WORKER_PORT": str(port), "PAYSTREAM_LOG_LEVEL": "WARNING",
           **extra_env}
    process = subprocess.Popen([sys.executable, "-m", "paystream", "worker"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        started = None
        cpu_started = 0.0
        peak = 0.0
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            time.sleep(0.25)
            try:
                raw = metric(url, "paystream_worker_records_total", 'stage="raw"')
                applied = metric(url, "paystream_worker_state_events_total", "")
            except httpx.HTTPError:
                continue
            if raw > 0 and started is None:
                started = time.perf_counter() - 0.25
                cpu_started = cpu_s(process.pid)
            peak = max(peak, rss_mb(process.pid))
            if raw >= expected_raw and applied >= metric(url, "paystream_worker_dedup_total", 'verdict="new"'):
                elapsed = time.perf_counter() - (started or time.perf_counter())
                cpu_per_event = (cpu_s(process.pid) - cpu_started) / expected_raw * 1e6
                return {"events_per_s": expected_raw / elapsed, "seconds": elapsed, "rss_mb": rss_mb(process.pid),
                        "peak_rss_mb": peak, "worker_cpu_us_per_event": cpu_per_event}
        raise RuntimeError("worker did not finish")
    finally:
        process.terminate()
        process.wait(60)
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    results: dict[str, object] = {"events": N, "partitions": PARTITIONS}
    with EmbeddedBroker() as broker:
        catalog = TopicCatalog(prefix="bench.", partitions=PARTITIONS)
        asyncio.run(ensure_topics(broker.bootstrap, catalog))
        items = envelopes(N)
        asyncio.run(publish(broker.bootstrap, catalog.raw, items))
        print(f"published {N} raw envelopes", flush=True)
        results["plain_loop"] = asyncio.run(plain_loop(broker.bootstrap, catalog.raw, "bench.plain-out", N))
        print(f"plain aiokafka loop: {results['plain_loop']:.0f} records/s", flush=True)
        results["faust_forward"] = faust_forward(broker.bootstrap, catalog.raw, "bench.forward-out", N)
        print(f"forward-only Faust agent: {results['faust_forward']:.0f} events/s", flush=True)
        full = run_worker(broker.bootstrap, "bench.", N, {"PAYSTREAM_RECONCILIATION": "false"})
        results["full"] = full
        print(f"full path without reconciliation: {full['events_per_s']:.0f} events/s", flush=True)
        with_recon = TopicCatalog(prefix="benchr.", partitions=PARTITIONS)
        asyncio.run(ensure_topics(broker.bootstrap, with_recon))
        asyncio.run(publish(broker.bootstrap, with_recon.raw, items))
        recon = run_worker(broker.bootstrap, "benchr.", N, {"PAYSTREAM_RECONCILIATION": "true"})
        results["full_with_reconciliation"] = recon
        print(f"full path with reconciliation: {recon['events_per_s']:.0f} events/s, worker CPU "
              f"{recon['worker_cpu_us_per_event']:.0f} µs/event", flush=True)
        print(f"worker RSS after {N} events: {full['rss_mb']:.0f} MB (peak {full['peak_rss_mb']:.0f} MB), "
              f"worker CPU {full['worker_cpu_us_per_event']:.0f} µs/event", flush=True)
        if DEDUP_KEYS:
            many = TopicCatalog(prefix="bench1m.", partitions=PARTITIONS)
            asyncio.run(ensure_topics(broker.bootstrap, many))
            asyncio.run(publish(broker.bootstrap, many.raw, envelopes(DEDUP_KEYS, seed=2)))
            results["million"] = run_worker(broker.bootstrap, "bench1m.", DEDUP_KEYS,
                                            {"PAYSTREAM_RECONCILIATION": "false"})
            print(f"worker RSS with {DEDUP_KEYS} dedup keys: {results['million']['rss_mb']:.0f} MB "  # type: ignore[index]
                  f"(peak {results['million']['peak_rss_mb']:.0f} MB)", flush=True)  # type: ignore[index]
    rate = full["events_per_s"]
    lines = [
        f"| plain aiokafka consume→produce loop | {results['plain_loop']:.0f} records/s |",
        f"| forward-only Faust agent | {results['faust_forward']:.0f} events/s |",
        f"| **full path** (dedup + normalize + state, one worker) | **{rate:.0f} events/s**, worker CPU "
        f"{full['worker_cpu_us_per_event']:.0f} µs/event |",
        f"| full path + reconciliation | {recon['events_per_s']:.0f} events/s, worker CPU "
        f"{recon['worker_cpu_us_per_event']:.0f} µs/event (+"
        f"{recon['worker_cpu_us_per_event'] - full['worker_cpu_us_per_event']:.0f} µs/event) |",
        f"| worker RSS after {N} events | {full['rss_mb']:.0f} MB (peak {full['peak_rss_mb']:.0f} MB) |",
    ]
    if "million" in results:
        million = results["million"]
        lines.append(f"| worker RSS with {DEDUP_KEYS:,} dedup keys | {million['rss_mb']:.0f} MB "  # type: ignore[index]
                     f"(peak {million['peak_rss_mb']:.0f} MB), {million['events_per_s']:.0f} events/s |")  # type: ignore[index]
    write_report("streams", "Streams benchmark (`make bench-streams`)", f"""
{N} pre-published raw envelopes (Stripe and PayPal payment stories from `paystream/dev/scenarios.py`, ~600 B
bodies) on {PARTITIONS} partitions of the embedded broker, which runs on the same 2 cores. Targets: full path
>= 2,500 events/s on one worker, RSS <= 300 MB with 1,000,000 dedup keys.
Run to run on a shared 2-core machine the figures vary by about ±10 %; compare runs, not single figures.

| run | figure |
|---|---|
{chr(10).join(lines)}

```json
{json.dumps(results, indent=2, default=str)}
```
""")
    print(f"full path: {rate:.0f} events/s")


if __name__ == "__main__":
    main()
