"""`python bench/ingress_clients.py`: a short A/B of the ingress's Kafka clients (PAYSTREAM_INGRESS_PRODUCER).

Same harness as `bench/ingress.py` (one uvicorn ingress process, `bench/loadgen.py` in another, pre-signed
~2 KB Stripe events, acks=all), run once per client on the embedded broker and on a single-node Apache
Kafka (`bench/brokers.py`, idempotent producers there). Prints one line per run and a
Markdown table to paste into `bench/reports/ingress.md`; reports the worst round, not the best.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import brokers
from bench.ingress import SECRET, load, serve
from bench.machine import describe, interrupt_on_sigterm
from paystream.core.broker import free_port
from schemas.topics import TopicCatalog

WARMUP = int(os.environ.get("BENCH_WARMUP", "1000"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "6000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
CLIENTS = os.environ.get("BENCH_CLIENTS", "aiokafka,confluent").split(",")


def run(kind: str, bootstrap: str, client: str) -> dict[str, object]:
    port = free_port()
    env = {**brokers.env_for(kind, bootstrap), "PAYSTREAM_INGRESS_PRODUCER": client,
           "PAYSTREAM_STRIPE_WEBHOOK_SECRETS": SECRET, "PAYSTREAM_LOG_LEVEL": "WARNING",
           "PAYSTREAM_INGRESS_PORT": str(port)}
    ingress = serve([sys.executable, "-m", "paystream", "ingress"], env, f"http://127.0.0.1:{port}/ready")
    try:
        load(port, WARMUP)
        rounds = [load(port, REQUESTS) for _ in range(ROUNDS)]
    finally:
        ingress.terminate()
        ingress.wait()
    all_rps = ", ".join(f"{float(r['rps']):.0f}" for r in rounds)  # type: ignore[arg-type]
    worst = min(rounds, key=lambda r: float(r["rps"]))  # type: ignore[arg-type]
    print(f"{kind:>12} {client:>9}: worst of {ROUNDS}: {worst['rps']:.0f} req/s  p50 {worst['p50_ms']:.2f} ms  "
          f"p99 {worst['p99_ms']:.2f} ms  statuses {worst['statuses']}  "
          f"(all rounds: {all_rps} req/s)", flush=True)
    return worst


def main() -> None:
    rows = []
    for kind in brokers.selected():
        with brokers.broker(kind, (TopicCatalog(),)) as bootstrap:
            for client in CLIENTS:
                result = run(kind, bootstrap, client)
                rows.append(f"| {kind} | {client} | {result['rps']:.0f} | {result['p50_ms']:.2f} | "
                            f"{result['p99_ms']:.2f} | {result['statuses']} |")
    facts = describe()
    print(f"\n{facts['date']}, {facts['cpu']}, {facts['cores']} cores; {REQUESTS} requests x {ROUNDS} rounds "
          f"after {WARMUP} warm-up, worst round\n")
    print("| broker | client | req/s | p50 ms | p99 ms | statuses |\n|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    interrupt_on_sigterm()
    main()
