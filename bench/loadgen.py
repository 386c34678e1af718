"""A small, fast HTTP/1.1 keep-alive load generator (raw asyncio streams, uvloop).

Runs in its own process so the server under test has the other core. Requests
are pre-built byte strings; each connection sends one request at a time and
records the latency of every response.

With `rate`, the load is open-loop: request i is due at start + i / rate whatever
the server does, its latency counts from when it was due (no coordinated omission),
and the result also holds when each response arrived (`done_at`, time.monotonic(),
which other processes on the machine can compare with their own readings).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import uvloop


async def _connection(host: str, port: int, requests: list[bytes], latencies: list[float], statuses: dict[int, int],
                      start: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    await start.wait()
    for request in requests:
        began = time.perf_counter()
        writer.write(request)
        status = await _response(reader)
        latencies.append(time.perf_counter() - began)
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


async def _response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            await reader.readexactly(int(line[15:]))
    return int(head[9:12])


async def run_paced(host: str, port: int, requests: list[bytes], connections: int, rate: float) -> dict[str, object]:
    """Open-loop load at `rate` requests/s over up to `connections` keep-alive connections."""
    done_at = [0.0] * len(requests)
    statuses = [0] * len(requests)
    latencies: list[float] = []
    next_index = iter(range(len(requests)))
    streams = [await asyncio.open_connection(host, port) for _ in range(connections)]
    began = time.monotonic() + 0.2

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for index in next_index:
            due = began + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(requests[index])
            statuses[index] = await _response(reader)
            done_at[index] = time.monotonic()
            latencies.append(done_at[index] - due)
        writer.close()

    await asyncio.gather(*(connection(reader, writer) for reader, writer in streams))
    elapsed = max(done_at) - began
    latencies.sort()
    counts: dict[int, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return {
        "requests": len(requests), "seconds": elapsed, "rps": len(requests) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "statuses": counts, "status_of": statuses, "done_at": done_at, "began": began,
    }


async def run(host: str, port: int, requests: list[bytes], connections: int) -> dict[str, object]:
    chunks = [requests[i::connections] for i in range(connections)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = asyncio.Event()
    tasks = [asyncio.create_task(_connection(host, port, c, latencies, statuses, start)) for c in chunks]
    await asyncio.sleep(0.2)
    began = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "statuses": statuses,
    }


def main() -> None:
    """stdin: {"host","port","connections","requests":[str latin-1 ...], "rate"?} → stdout: result JSON."""
    job = json.load(sys.stdin)
    requests = [r.encode("latin-1") for r in job["requests"]]
    if job.get("rate"):
        result = uvloop.run(run_paced(job["host"], job["port"], requests, job["connections"], job["rate"]))
    else:
        result = uvloop.run(run(job["host"], job["port"], requests, job["connections"]))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
