"""A small, fast HTTP/1.1 keep-alive load generator (raw asyncio streams, uvloop).

Runs in its own process so the server under test has the other core. Requests
are pre-built byte strings; each connection sends one request at a time and
records the latency of every response.
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
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await reader.readexactly(length)
        latencies.append(time.perf_counter() - began)
        status = int(head[9:12])
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


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
    """stdin: {"host","port","connections","requests":[str latin-1 ...]} → stdout: result JSON."""
    job = json.load(sys.stdin)
    requests = [r.encode("latin-1") for r in job["requests"]]
    result = uvloop.run(run(job["host"], job["port"], requests, job["connections"]))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
