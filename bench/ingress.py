"""`make bench-ingress`: the ingress against two baselines on the same server stack, like for like.

Four servers, one uvicorn process each (uvloop + httptools): a bare FastAPI app and a
bare ASGI app that only read the body (`bench/bare_app.py`), and the ingress twice —
with its webhook fast path (`ingress/fastpath.py`, the default) and with the plain
FastAPI routes (`PAYSTREAM_INGRESS_FASTPATH=false`) — both at the ingress's default log
level. The load generator runs in another process with pre-signed, unique Stripe events
of ~2 KB. The ingress does the real work: verify, envelope, produce with acks=all to the
embedded broker and wait for the acknowledgement.

Rounds are interleaved (round i measures all four one after another), so each round's
ratios compare runs taken under the same machine load; every run is reported, and a
target counts as met only if the worst round meets it.
Target: ingress >= 0.8x the bare FastAPI app's req/s, and p99 <= 2x its p99.

    BENCH_REQUESTS=30000 BENCH_WARMUP=3000 BENCH_ROUNDS=3 BENCH_NOTE="..." .venv/bin/python bench/ingress.py
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


TARGETS = ("bare ASGI", "bare FastAPI", "ingress (fast path)", "ingress (FastAPI routes)")
Run = dict[str, object]


def line(name: str, round_no: int, r: Run) -> str:
    return (f"{name:>24} round {round_no}: {float(r['rps']):.0f} req/s  p50 {float(r['p50_ms']):.2f} ms  "  # type: ignore[arg-type]
            f"p99 {float(r['p99_ms']):.2f} ms  statuses {r['statuses']}")  # type: ignore[arg-type]


def ratio(a: Run, b: Run, key: str) -> float:
    return float(a[key]) / float(b[key])  # type: ignore[arg-type]


def main() -> None:
    note = os.environ.get("BENCH_NOTE", "a quiet machine")
    runs: dict[str, list[Run]] = {name: [] for name in TARGETS}
    with EmbeddedBroker() as broker:
        import asyncio

        asyncio.run(ensure_topics(broker.bootstrap, TopicCatalog()))
        uvicorn = [sys.executable, "-m", "uvicorn", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
        ports = {name: free_port() for name in TARGETS}
        ingress_env = {"PAYSTREAM_KAFKA_BOOTSTRAP": broker.bootstrap, "PAYSTREAM_EMBEDDED_BROKER": "true",
                       "PAYSTREAM_STRIPE_WEBHOOK_SECRETS": SECRET}  # PAYSTREAM_LOG_LEVEL left at its default
        servers = []
        try:
            for name, app in (("bare ASGI", "bench.bare_app:asgi_app"), ("bare FastAPI", "bench.bare_app:app")):
                servers.append(serve([*uvicorn, "--port", str(ports[name]), app], {},
                                     f"http://127.0.0.1:{ports[name]}/docs"))
            for name, fastpath in (("ingress (fast path)", "true"), ("ingress (FastAPI routes)", "false")):
                servers.append(serve([sys.executable, "-m", "paystream", "ingress"],
                                     {**ingress_env, "PAYSTREAM_INGRESS_PORT": str(ports[name]),
                                      "PAYSTREAM_INGRESS_FASTPATH": fastpath},
                                     f"http://127.0.0.1:{ports[name]}/ready"))
            for name in TARGETS:
                load(ports[name], WARMUP)
            for round_no in range(1, ROUNDS + 1):
                for name in TARGETS:
                    result = load(ports[name], REQUESTS)
                    runs[name].append(result)
                    print(line(name, round_no, result), flush=True)
        finally:
            for server in servers:
                server.terminate()
                server.wait()
    load_avg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    fast, plain, bare, asgi = (runs[n] for n in ("ingress (fast path)", "ingress (FastAPI routes)", "bare FastAPI",
                                                 "bare ASGI"))
    throughput = [ratio(f, b, "rps") for f, b in zip(fast, bare, strict=True)]
    p99 = [ratio(f, b, "p99_ms") for f, b in zip(fast, bare, strict=True)]
    vs_asgi = [ratio(f, a, "rps") for f, a in zip(fast, asgi, strict=True)]
    ab = [ratio(f, p, "rps") for f, p in zip(fast, plain, strict=True)]
    ab_p99 = [ratio(f, p, "p99_ms") for f, p in zip(fast, plain, strict=True)]
    met = min(throughput) >= 0.8 and max(p99) <= 2.0
    verdict = (f"ingress / bare FastAPI, worst round: throughput {min(throughput):.2f}x (target >= 0.8x), "
               f"p99 {max(p99):.2f}x (target <= 2x): target {'met' if met else '**not met**'}")
    pays = min(ab) > 1.0
    ab_line = (f"fast path / FastAPI routes: throughput {min(ab):.2f}x-{max(ab):.2f}x, p99 {min(ab_p99):.2f}x-"
               f"{max(ab_p99):.2f}x over {len(ab)} rounds: the fast path "
               + ("pays in every round (keep it)" if pays else "does **not** pay in every round"))
    print(verdict)
    print(ab_line)
    rows = "\n".join(
        f"| {round_no} | {name} | {float(r['rps']):.0f} | {float(r['p50_ms']):.2f} | "  # type: ignore[arg-type]
        f"{float(r['p99_ms']):.2f} | {r['statuses']} |"  # type: ignore[arg-type]
        for round_no in range(1, ROUNDS + 1) for name in TARGETS for r in [runs[name][round_no - 1]])
    ratios = "\n".join(
        f"| {i + 1} | {throughput[i]:.2f}x | {p99[i]:.2f}x | {vs_asgi[i]:.2f}x | {ab[i]:.2f}x | {ab_p99[i]:.2f}x |"
        for i in range(ROUNDS))
    path = write_report("ingress", "Ingress benchmark (`make bench-ingress`)", f"""
Setup: four servers, one uvicorn process each (uvloop, httptools): a bare ASGI app and a bare FastAPI app that
only read the body (`bench/bare_app.py`), and `paystream ingress` with its webhook fast path (default) and with
the plain FastAPI routes (`PAYSTREAM_INGRESS_FASTPATH=false`). The ingress runs at its default log level
(`PAYSTREAM_LOG_LEVEL` unset = INFO), the baselines at uvicorn's default without access log. The ingress
verifies each signature, builds and encodes the Avro envelope and waits for the embedded broker's acks=all
acknowledgement (aiokafka producer) before answering. Load generator (`bench/loadgen.py`) in a separate
process, {CONNECTIONS} keep-alive connections, {REQUESTS:,} pre-signed unique Stripe events of ~2 KB per run,
{WARMUP:,} warm-up requests per server; {ROUNDS} interleaved rounds (each round runs all four back to back).

- load average right after the runs: {load_avg}
- {note}

| round | target | req/s | p50 ms | p99 ms | statuses |
|---|---|---:|---:|---:|---|
{rows}

| round | ingress / bare FastAPI req/s | p99 | ingress / bare ASGI req/s | fast path / FastAPI routes req/s | p99 |
|---|---:|---:|---:|---:|---:|
{ratios}

- {verdict}
- {ab_line}

At the bare ASGI app's rate the load generator (one Python process) may be what limits it: read that figure as
"at least". The confluent-kafka producer is not in these runs unless the setup line above says so.
""")
    print(f"report: {path}")


if __name__ == "__main__":
    main()
