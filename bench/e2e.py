"""`make bench-e2e`: end-to-end latency at a steady 500 req/s, provider POST acknowledged → row in `payments`.

The whole pipeline runs natively as in `make run` (embedded broker, one ingress, one
worker, the SQLite sink). The load generator posts signed Stripe `payment_intent.succeeded`
events for new payments at a fixed rate and notes when each 200 arrives; a poller reads
new rows from the sink's SQLite file every 10 ms (by rowid, so each poll is cheap) and
notes when each payment's row appears. Target: p99 <= 1 s on this machine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import write_report
from paystream.broker import EmbeddedBroker, free_port
from paystream.dev.scenarios import Delivery, stripe_payment_intent
from paystream.dev.sender import Sender, Signer

RATE = float(os.environ.get("BENCH_RATE", "500"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
SECRET = "whsec_bench_e2e"


def wait_ready(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def run(ingress_url: str, db_path: Path) -> dict[str, float]:
    count = int(RATE * SECONDS)
    now = int(time.time())
    deliveries: list[Delivery] = [
        stripe_payment_intent("payment_intent.succeeded", f"pi_e2e_{n:07d}", amount=1000 + n, currency="USD",
                              created=now, charge=f"ch_e2e_{n:07d}") for n in range(count)]
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = asyncio.Event()

    async def poll() -> None:
        connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        last = 0
        try:
            while not done.is_set() or len(seen) < len(acked):
                rows = connection.execute("SELECT rowid, payment_id FROM payments WHERE rowid > ? ORDER BY rowid",
                                          (last,)).fetchall()
                stamp = time.perf_counter()
                for rowid, payment_id in rows:
                    seen.setdefault(payment_id, stamp)
                    last = max(last, rowid)
                if done.is_set() and time.perf_counter() - finished[0] > 30:
                    break
                await asyncio.sleep(0.01)
        finally:
            connection.close()

    finished = [0.0]
    poller = asyncio.create_task(poll())
    sender = Sender(ingress_url, Signer(stripe_secret=SECRET), rate=RATE, concurrency=64)
    original = sender._deliver

    async def timed(client: httpx.AsyncClient, delivery: Delivery, report: object) -> None:
        await original(client, delivery, report)  # type: ignore[arg-type]
        acked[delivery.payment_id] = time.perf_counter()

    sender._deliver = timed  # type: ignore[method-assign]
    started = time.perf_counter()
    report = await sender.send(deliveries)
    elapsed = time.perf_counter() - started
    finished[0] = time.perf_counter()
    done.set()
    await poller
    latencies = [seen[p] - acked[p] for p in acked if p in seen]
    return {
        "requests": count, "accepted": len(report.accepted_event_ids), "achieved_rate": count / elapsed,
        "rows_seen": len(latencies), "p50_s": percentile(latencies, 0.5), "p90_s": percentile(latencies, 0.9),
        "p99_s": percentile(latencies, 0.99), "max_s": max(latencies),
        "ack_p99_ms": percentile(report.latencies_s, 0.99) * 1000,
    }


def main() -> None:
    data = Path(tempfile.mkdtemp())
    processes: list[subprocess.Popen[bytes]] = []
    with EmbeddedBroker() as broker:
        ingress_port, worker_port, sink_port = free_port(), free_port(), free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PAYSTREAM_")},
               "PAYSTREAM_KAFKA_BOOTSTRAP": broker.bootstrap, "PAYSTREAM_EMBEDDED_BROKER": "true",
               "PAYSTREAM_DATA_DIR": str(data), "PAYSTREAM_STRIPE_WEBHOOK_SECRETS": SECRET,
               "PAYSTREAM_INGRESS_PORT": str(ingress_port), "PAYSTREAM_WORKER_PORT": str(worker_port),
               "PAYSTREAM_SINK_METRICS_PORT": str(sink_port), "PAYSTREAM_LOG_LEVEL": "WARNING",
               "PAYSTREAM_STREAM_BATCH_MS": "20", "PAYSTREAM_SINK_BATCH_MS": "50"}
        cli = [sys.executable, "-m", "paystream"]
        try:
            subprocess.run([*cli, "sink", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
            for command, ready in (("ingress", f"http://127.0.0.1:{ingress_port}/ready"),
                                   ("worker", f"http://127.0.0.1:{worker_port}/ready"),
                                   ("sink", f"http://127.0.0.1:{sink_port}/ready")):
                processes.append(subprocess.Popen([*cli, command], env=env, stdout=subprocess.DEVNULL,
                                                  stderr=subprocess.DEVNULL))
                wait_ready(ready)
            result = asyncio.run(run(f"http://127.0.0.1:{ingress_port}", data / "paystream.db"))
        finally:
            for process in reversed(processes):
                process.terminate()
            for process in processes:
                process.wait(30)
            shutil.rmtree(data, ignore_errors=True)
    verdict = "met" if result["p99_s"] <= 1.0 and result["rows_seen"] == result["requests"] else "NOT met"
    summary = (f"e2e at {result['achieved_rate']:.0f} req/s: p50 {result['p50_s'] * 1000:.0f} ms, "
               f"p99 {result['p99_s'] * 1000:.0f} ms, max {result['max_s'] * 1000:.0f} ms "
               f"({result['rows_seen']}/{result['requests']} rows) — target p99 <= 1 s {verdict}")
    print(summary)
    path = write_report("e2e", "End-to-end latency (`make bench-e2e`)", f"""
The pipeline as `make run` starts it (embedded broker, one ingress, one worker, the SQLite sink), all on this
machine's 2 cores with the load generator. {int(RATE * SECONDS)} signed Stripe events for new payments at
{RATE:.0f} req/s; latency = first poll (every 10 ms) that sees the payment's row in `payments` minus the
moment the 200 arrived at the sender.

| figure | value |
|---|---|
| requests / accepted | {result['requests']} / {result['accepted']} |
| achieved rate | {result['achieved_rate']:.0f} req/s |
| rows seen in `payments` | {result['rows_seen']} |
| latency p50 / p90 / p99 / max | {result['p50_s'] * 1000:.0f} / {result['p90_s'] * 1000:.0f} / \
{result['p99_s'] * 1000:.0f} / {result['max_s'] * 1000:.0f} ms |
| ingress acknowledgement p99 | {result['ack_p99_ms']:.0f} ms |

**{summary}**
""")
    print(f"report: {path}")


if __name__ == "__main__":
    main()
