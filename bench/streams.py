"""`make bench-streams`: N pre-published raw envelopes through one worker, against two floors, per broker.

(a) a plain aiokafka consume→produce loop over the same records (the limit for Python),
(b) a forward-only Faust agent (Faust's own floor: one `await topic.send` per event),
then the full path — `paystream worker` (dedup + normalize + payment state, RocksDB tables,
changelogs) — as a real process. The full path runs with reconciliation off (issue 3's
definition), again with it on, and on Apache Kafka also with
`PAYSTREAM_PROCESSING_GUARANTEE=exactly_once` (transactions; the embedded broker has none).
Every figure is the worst of `BENCH_RUNS` (default 2) runs, each on a fresh topic set; the
embedded broker and Apache Kafka (`bench/brokers.py`) run in the same invocation, one report
column each. A last run per broker fills the dedup table with `BENCH_DEDUP_KEYS` (default
1,000,000; 0 skips it) keys and reports the RSS there.
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
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import brokers
from bench.faust_app import run_faust_app
from bench.machine import interrupt_on_sigterm, write_report
from paystream.core.broker import free_port, producer_options
from paystream.dev.scenarios import scenario
from schemas.clock import now_ms
from schemas.records import WebhookEnvelope
from schemas.serde import envelope_serde
from schemas.topics import TopicCatalog, ensure_topics

N = int(os.environ.get("BENCH_EVENTS", "50000"))
DEDUP_KEYS = int(os.environ.get("BENCH_DEDUP_KEYS", "1000000"))
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "8"))
RUNS = int(os.environ.get("BENCH_RUNS", "2"))


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


async def publish(bootstrap: str, topic: str, items: list[WebhookEnvelope], embedded: bool = True) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=262144,
                                **producer_options(embedded=embedded, linger_ms=5))
    await producer.start()
    serde = envelope_serde()
    try:
        for start in range(0, len(items), 5000):
            futures = [await producer.send(topic, serde.encode(e), key=e.key.encode())
                       for e in items[start:start + 5000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def plain_loop(bootstrap: str, source: str, target: str, count: int, embedded: bool) -> float:
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=f"bench-plain-{time.time_ns()}",
                                auto_offset_reset="earliest", session_timeout_ms=6000, rebalance_timeout_ms=4000,
                                max_poll_records=2000)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **producer_options(embedded=embedded))
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
EMBEDDED = os.environ["EMBEDDED"] == "true"
if EMBEDDED:
    install_embedded_broker_compat()
app = faust.App("bench-forward-%s" % os.environ["RUN"], broker="kafka://" + os.environ["BS"], store="memory://",
                key_serializer="raw", value_serializer="raw", web_enabled=False, consumer_auto_offset_reset="earliest",
                producer_linger=0.001, **faust_broker_options(embedded=EMBEDDED))
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


def faust_forward(bootstrap: str, source: str, target: str, count: int, embedded: bool) -> float:
    env = {**os.environ, "BS": bootstrap, "SRC": source, "DST": target, "N": str(count), "RUN": str(time.time_ns()),
           "EMBEDDED": str(embedded).lower()}
    return float(run_faust_app(FORWARD_APP, env))


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


def run_worker(bootstrap: str, prefix: str, expected_raw: int, extra_env: dict[str, str],
               kind: str = brokers.EMBEDDED) -> dict[str, float]:
    port = free_port()
    data = Path(tempfile.mkdtemp())
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PAYSTREAM_")},
           **brokers.env_for(kind, bootstrap), "PAYSTREAM_TOPIC_PREFIX": prefix,
           "PAYSTREAM_PARTITIONS": str(PARTITIONS),
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
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:  # a worker stuck in its shutdown must not outlive the benchmark
            process.kill()
            process.wait()
        shutil.rmtree(data, ignore_errors=True)


Runs = list[dict[str, float]]


def worst(runs: Runs) -> dict[str, float]:
    return min(runs, key=lambda r: r["events_per_s"])


def measure(kind: str, items: list[WebhookEnvelope]) -> dict[str, Any]:
    """Every figure of one broker's column, each measured RUNS times on a fresh topic set."""
    embedded = brokers.is_embedded(kind)
    plain: list[float] = []
    forward: list[float] = []
    paths = {"full": {"PAYSTREAM_RECONCILIATION": "false"},
             "full_with_reconciliation": {"PAYSTREAM_RECONCILIATION": "true"}}
    if not embedded:
        paths["full_exactly_once"] = {"PAYSTREAM_RECONCILIATION": "false",
                                      "PAYSTREAM_PROCESSING_GUARANTEE": "exactly_once"}
    workers: dict[str, Runs] = {name: [] for name in paths}
    label = brokers.LABELS[kind]
    with brokers.broker(kind) as bootstrap:
        def fresh(tag: str, envelopes_: list[WebhookEnvelope]) -> TopicCatalog:
            catalog = TopicCatalog(prefix=f"bench{tag}.", partitions=PARTITIONS)
            asyncio.run(ensure_topics(bootstrap, catalog))
            asyncio.run(publish(bootstrap, catalog.raw, envelopes_, embedded))
            return catalog

        floors = fresh("floors", items)  # the floors read its raw topic and write to two of its other topics
        for run in range(1, RUNS + 1):  # interleaved, so every figure sees the same spread of machine load
            plain.append(asyncio.run(plain_loop(bootstrap, floors.raw, floors.events, len(items), embedded)))
            forward.append(faust_forward(bootstrap, floors.raw, floors.state, len(items), embedded))
            print(f"{label} run {run}: plain loop {plain[-1]:.0f} records/s, Faust forward {forward[-1]:.0f} "
                  "events/s", flush=True)
            for name, extra in paths.items():
                catalog = fresh(f"{run}{name}", items)
                workers[name].append(run_worker(bootstrap, catalog.prefix, len(items), extra, kind))
                result = workers[name][-1]
                print(f"{label} run {run} {name}: {result['events_per_s']:.0f} events/s, "
                      f"{result['worker_cpu_us_per_event']:.0f} µs CPU/event, peak RSS {result['peak_rss_mb']:.0f} MB",
                      flush=True)
        million = None
        if DEDUP_KEYS:
            catalog = fresh("1m", envelopes(DEDUP_KEYS, seed=2))
            million = run_worker(bootstrap, catalog.prefix, DEDUP_KEYS, paths["full"], kind)
            print(f"{label} RSS with {DEDUP_KEYS} dedup keys: {million['rss_mb']:.0f} MB", flush=True)
    return {"plain_loop": plain, "faust_forward": forward, **workers, "million": million}


def column(r: dict[str, Any]) -> list[str]:
    """One broker's column of the report, every figure the worst of its runs (RSS: the largest)."""
    def worker_cell(runs: Runs | None) -> str:
        if not runs:
            return "n/a (no transactions on the embedded broker)"
        w = worst(runs)
        return f"{w['events_per_s']:.0f} events/s, {w['worker_cpu_us_per_event']:.0f} µs CPU/event"

    cells = [f"{min(r['plain_loop']):.0f} records/s", f"{min(r['faust_forward']):.0f} events/s",
             f"**{worker_cell(r['full'])}**", worker_cell(r.get("full_exactly_once")),
             worker_cell(r["full_with_reconciliation"]),
             f"{max(x['rss_mb'] for x in r['full']):.0f} MB (peak {max(x['peak_rss_mb'] for x in r['full']):.0f} MB)"]
    if r["million"]:
        cells.append(f"{r['million']['rss_mb']:.0f} MB (peak {r['million']['peak_rss_mb']:.0f} MB)")
    return cells


FIGURES = ("plain aiokafka consume→produce loop", "forward-only Faust agent",
           "**full path**, at-least-once + offset-aware dedup", "full path, `exactly_once` (transactions)",
           "full path + reconciliation", f"worker RSS after {N:,} events (largest run)",
           f"worker RSS with {DEDUP_KEYS:,} dedup keys")


def main() -> None:
    items = envelopes(N)
    results = {kind: measure(kind, items) for kind in brokers.selected()}
    header = " | ".join(brokers.LABELS[kind] for kind in results)
    columns = [column(r) for r in results.values()]
    verdicts = []
    for kind, r in results.items():
        full = worst(r["full"])["events_per_s"]  # type: ignore[arg-type]
        verdicts.append(f"- {brokers.LABELS[kind]}: full path {full:.0f} events/s, worst of {RUNS} "
                        f"(target >= 2,500): {'met' if full >= 2500 else '**not met**'}")
    write_report("streams", "Streams benchmark (`make bench-streams`)", f"""
{N:,} pre-published raw envelopes (Stripe and PayPal payment stories from `paystream/dev/scenarios.py`, ~600 B
bodies) on {PARTITIONS} partitions, one worker, on each broker in the same invocation with the same parameters:
the embedded broker, then Apache Kafka 4.1 (one KRaft node; `PAYSTREAM_EMBEDDED_BROKER=false`: idempotent
producers, Faust's defaults). The broker runs on the same 2 cores. Each figure is the **worst of {RUNS} runs**
(interleaved, each worker run on a fresh topic set). Targets: full path >= 2,500 events/s on one worker,
RSS <= 300 MB with 1,000,000 dedup keys.

| figure | {header} |
|---|{"---|" * len(results)}
{chr(10).join(f"| {name} | {' | '.join(cells)} |" for name, *cells in zip(FIGURES, *columns, strict=False))}

{chr(10).join(verdicts)}

```json
{json.dumps(results, indent=2, default=str)}
```
""")
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    interrupt_on_sigterm()
    main()
