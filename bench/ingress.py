"""`make bench-ingress`: the ingress against a bare FastAPI app on the same server stack.

Both run as one uvicorn process (uvloop + httptools); the load generator runs in
another process with pre-signed, unique Stripe events of ~2 KB. The ingress does
the real work — verify, envelope, produce with acks=all to the embedded broker
and wait for the acknowledgement — the bare app only reads the body.
Target: ingress >= 0.8x the bare app's req/s, and p99 <= 2x the bare app's p99.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import write_report
from ingress.signing import sign_stripe
from paystream.core.broker import EmbeddedBroker, free_port
from schemas.topics import TopicCatalog, ensure_topics

SECRET = "whsec_bench_secret"
WARMUP = int(os.environ.get("BENCH_WARMUP", "3000"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "30000"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
ROOT = Path(__file__).resolve().parents[1]


def body_of(n: int) -> bytes:
    """A ~2 KB Stripe-shaped payment_intent.succeeded event, unique per n."""
    filler = "x" * 1500
    return (
        '{"id":"evt_bench_%s_%d","object":"event","type":"payment_intent.succeeded","created":%d,"livemode":false,'
        '"data":{"object":{"id":"pi_bench_%d","object":"payment_intent","amount":2000,"amount_received":2000,'
        '"currency":"usd","status":"succeeded","description":"%s"}}}'
        % (uuid.uuid4().hex[:8], n, int(time.time()), n, filler)
    ).encode()


def requests_for(count: int, port: int) -> list[str]:
    now = int(time.time())
    built = []
    for n in range(count):
        body = body_of(n)
        head = (f"POST /webhooks/stripe HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
                f"stripe-signature: {sign_stripe(body, SECRET, now)}\r\ncontent-length: {len(body)}\r\n\r\n")
        built.append((head.encode() + body).decode("latin-1"))
    return built


def load(port: int, count: int) -> dict[str, object]:
    job = json.dumps({"host": "127.0.0.1", "port": port, "connections": CONNECTIONS,
                      "requests": requests_for(count, port)})
    out = subprocess.run([sys.executable, "-m", "bench.loadgen"], input=job, capture_output=True, text=True,
                         cwd=ROOT, check=True)
    return json.loads(out.stdout)


def wait_http(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def serve(argv: list[str], env: dict[str, str], ready_url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_http(ready_url)
    return process


def measure(name: str, port: int) -> dict[str, object]:
    load(port, WARMUP)
    results = [load(port, REQUESTS) for _ in range(ROUNDS)]
    best = max(results, key=lambda r: float(r["rps"]))  # type: ignore[arg-type]
    print(f"{name:>8}: {best['rps']:.0f} req/s  p50 {best['p50_ms']:.2f} ms  p99 {best['p99_ms']:.2f} ms  "
          f"statuses {best['statuses']}", flush=True)
    return best


def main() -> None:
    with EmbeddedBroker() as broker:
        import asyncio

        asyncio.run(ensure_topics(broker.bootstrap, TopicCatalog()))
        uvicorn = [sys.executable, "-m", "uvicorn", "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                   "--log-level", "warning"]
        bare_port = free_port()
        bare = serve([*uvicorn, "--port", str(bare_port), "bench.bare_app:app"], {},
                     f"http://127.0.0.1:{bare_port}/docs")
        try:
            bare_result = measure("bare", bare_port)
        finally:
            bare.terminate()
            bare.wait()
        ingress_port = free_port()
        env = {"PAYSTREAM_KAFKA_BOOTSTRAP": broker.bootstrap, "PAYSTREAM_EMBEDDED_BROKER": "true",
               "PAYSTREAM_STRIPE_WEBHOOK_SECRETS": SECRET, "PAYSTREAM_LOG_LEVEL": "WARNING",
               "PAYSTREAM_INGRESS_PORT": str(ingress_port)}
        ingress = serve([sys.executable, "-m", "paystream", "ingress"], env, f"http://127.0.0.1:{ingress_port}/ready")
        try:
            ingress_result = measure("ingress", ingress_port)
        finally:
            ingress.terminate()
            ingress.wait()
    ratio = float(ingress_result["rps"]) / float(bare_result["rps"])  # type: ignore[arg-type]
    p99_ratio = float(ingress_result["p99_ms"]) / float(bare_result["p99_ms"])  # type: ignore[arg-type]
    verdict = "met" if ratio >= 0.8 and p99_ratio <= 2.0 else "NOT met"
    summary = (f"throughput ratio {ratio:.2f}x (target >= 0.8x), p99 ratio {p99_ratio:.2f}x (target <= 2x): "
               f"target {verdict}")
    print(summary)
    rows = "\n".join(
        f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['statuses']} |"
        for name, r in (("bare FastAPI", bare_result), ("paystream ingress", ingress_result)))
    path = write_report("ingress", "Ingress benchmark (`make bench-ingress`)", f"""
Setup: one uvicorn process each (uvloop, httptools), the load generator (`bench/loadgen.py`) in a separate
process with {CONNECTIONS} keep-alive connections, {REQUESTS} pre-signed unique Stripe events of ~2 KB per round,
{WARMUP} warm-up requests, best of {ROUNDS} rounds. The ingress verifies each signature, builds and encodes the
Avro envelope and waits for the embedded broker's acks=all acknowledgement before answering; the bare app
only reads the body. Logging at WARNING for both (per-request INFO lines cost extra, see below).

| target | req/s | p50 ms | p99 ms | statuses |
|---|---|---|---|---|
{rows}

**{summary}**
""")
    print(f"report: {path}")


if __name__ == "__main__":
    main()
