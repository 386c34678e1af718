"""`make bench-ingress`: the ingress against two baselines on the same server stack, like for like, per broker.

One uvicorn process per server (uvloop + httptools): a bare FastAPI app and a bare ASGI app
that only read the body (`bench/bare_app.py`), and, per broker (`bench/brokers.py`: the embedded
broker and Apache Kafka, both up in the same invocation), the ingress twice — with its webhook
fast path (`ingress/fastpath.py`, the default) and with the plain FastAPI routes
(`PAYSTREAM_INGRESS_FASTPATH=false`) — at the ingress's default log level and default producer.
The load generator runs in another process with pre-signed, unique Stripe events of ~2 KB. The
ingress does the real work: verify, envelope, produce with acks=all (idempotent on Apache Kafka)
and wait for the acknowledgement.

Rounds are interleaved (round i measures every server one after another), so each round's
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
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import brokers
from bench.machine import interrupt_on_sigterm, write_report
from ingress.signing import sign_stripe
from paystream.core.broker import free_port
from schemas.topics import TopicCatalog

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


BASELINES = {"bare ASGI": "bench.bare_app:asgi_app", "bare FastAPI": "bench.bare_app:app"}
VARIANTS = {"fast path": "true", "FastAPI routes": "false"}
Run = dict[str, object]


def ingress_name(kind: str, variant: str) -> str:
    return f"ingress {brokers.LABELS[kind]} ({variant})"


def line(name: str, round_no: int, r: Run) -> str:
    return (f"{name:>36} round {round_no}: {float(r['rps']):.0f} req/s  p50 {float(r['p50_ms']):.2f} ms  "  # type: ignore[arg-type]
            f"p99 {float(r['p99_ms']):.2f} ms  statuses {r['statuses']}")  # type: ignore[arg-type]


def ratios(a: list[Run], b: list[Run], key: str) -> list[float]:
    """a / b per round (the rounds were interleaved, so each pair ran under the same load)."""
    return [float(x[key]) / float(y[key]) for x, y in zip(a, b, strict=True)]  # type: ignore[arg-type]


def start_servers(stack: ExitStack, kinds: list[str]) -> dict[str, int]:
    """Every server of the run, each stopped by `stack`; the brokers are started (and stopped) there too."""
    uvicorn = [sys.executable, "-m", "uvicorn", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    ports: dict[str, int] = {}

    def started(name: str, argv: list[str], env: dict[str, str], port: int, ready_path: str) -> None:
        process = serve(argv, env, f"http://127.0.0.1:{port}{ready_path}")
        stack.callback(process.wait)
        stack.callback(process.terminate)
        ports[name] = port

    for name, app in BASELINES.items():
        port = free_port()
        started(name, [*uvicorn, "--port", str(port), app], {}, port, "/docs")
    for kind in kinds:
        bootstrap = stack.enter_context(brokers.broker(kind, (TopicCatalog(),)))
        for variant, fastpath in VARIANTS.items():
            port = free_port()
            env = {**brokers.env_for(kind, bootstrap), "PAYSTREAM_STRIPE_WEBHOOK_SECRETS": SECRET,
                   "PAYSTREAM_INGRESS_PORT": str(port), "PAYSTREAM_INGRESS_FASTPATH": fastpath}
            started(ingress_name(kind, variant), [sys.executable, "-m", "paystream", "ingress"], env, port, "/ready")
    return ports


def verdicts(runs: dict[str, list[Run]], kinds: list[str]) -> tuple[list[str], list[str]]:
    """Per broker: the target line (worst round) and the fast-path A/B line; and the ratio table's rows."""
    lines, rows = [], []
    bare, asgi = runs["bare FastAPI"], runs["bare ASGI"]
    for kind in kinds:
        label = brokers.LABELS[kind]
        fast, plain = runs[ingress_name(kind, "fast path")], runs[ingress_name(kind, "FastAPI routes")]
        throughput, p99 = ratios(fast, bare, "rps"), ratios(fast, bare, "p99_ms")
        ab, ab_p99 = ratios(fast, plain, "rps"), ratios(fast, plain, "p99_ms")
        met = min(throughput) >= 0.8 and max(p99) <= 2.0
        lines.append(f"{label}: ingress / bare FastAPI, worst round: throughput {min(throughput):.2f}x "
                     f"(target >= 0.8x), p99 {max(p99):.2f}x (target <= 2x): target {'met' if met else '**not met**'}")
        lines.append(f"{label}: fast path / FastAPI routes: throughput {min(ab):.2f}x-{max(ab):.2f}x, p99 "
                     f"{min(ab_p99):.2f}x-{max(ab_p99):.2f}x over {len(ab)} rounds: the fast path "
                     + ("pays in every round" if min(ab) > 1.0 else "does **not** pay in every round"))
        rows += [f"| {label} | {i + 1} | {throughput[i]:.2f}x | {p99[i]:.2f}x | {rps:.2f}x | {ab[i]:.2f}x | "
                 f"{ab_p99[i]:.2f}x |" for i, rps in enumerate(ratios(fast, asgi, "rps"))]
    return lines, rows


def main() -> None:
    kinds = brokers.selected()
    names = [*BASELINES, *(ingress_name(kind, variant) for kind in kinds for variant in VARIANTS)]
    runs: dict[str, list[Run]] = {name: [] for name in names}
    with ExitStack() as stack:
        ports = start_servers(stack, kinds)
        for name in names:
            load(ports[name], WARMUP)
        for round_no in range(1, ROUNDS + 1):
            for name in names:
                runs[name].append(load(ports[name], REQUESTS))
                print(line(name, round_no, runs[name][-1]), flush=True)
    lines, ratio_rows = verdicts(runs, kinds)
    print("\n".join(lines))
    rows = "\n".join(
        f"| {round_no} | {name} | {float(r['rps']):.0f} | {float(r['p50_ms']):.2f} | "  # type: ignore[arg-type]
        f"{float(r['p99_ms']):.2f} | {r['statuses']} |"  # type: ignore[arg-type]
        for round_no in range(1, ROUNDS + 1) for name in names for r in [runs[name][round_no - 1]])
    path = write_report("ingress", "Ingress benchmark (`make bench-ingress`)", f"""
Setup: one uvicorn process per server (uvloop, httptools): a bare ASGI app and a bare FastAPI app that only read
the body (`bench/bare_app.py`), and `paystream ingress` with its webhook fast path (default) and with the plain
FastAPI routes (`PAYSTREAM_INGRESS_FASTPATH=false`), once against the embedded broker and once against Apache
Kafka 4.1 (one KRaft node; `PAYSTREAM_EMBEDDED_BROKER=false`, so the producer is idempotent), both brokers up in
the same invocation. The ingress runs at its default log level (`PAYSTREAM_LOG_LEVEL` unset = INFO) with its
default producer (`PAYSTREAM_INGRESS_PRODUCER` unset = confluent-kafka), the baselines at uvicorn's default
without access log. The ingress verifies each signature, builds and encodes the Avro envelope and waits for the
broker's acks=all acknowledgement before answering. Load generator (`bench/loadgen.py`) in a separate process,
{CONNECTIONS} keep-alive connections, {REQUESTS:,} pre-signed unique Stripe events of ~2 KB per run, {WARMUP:,}
warm-up requests per server; {ROUNDS} interleaved rounds (each round runs every server back to back).

| round | target | req/s | p50 ms | p99 ms | statuses |
|---|---|---:|---:|---:|---|
{rows}

| broker | round | ingress / bare FastAPI req/s | p99 | ingress / bare ASGI req/s | fast path / routes req/s | p99 |
|---|---:|---:|---:|---:|---:|---:|
{chr(10).join(ratio_rows)}

{chr(10).join(f"- {text}" for text in lines)}

At the bare ASGI app's rate the load generator (one Python process) may be what limits it: read that figure as
"at least".
""")
    print(f"report: {path}")


if __name__ == "__main__":
    interrupt_on_sigterm()
    main()
