"""Slow and huge requests against a real `paystream ingress` child process (uvicorn, httptools).

Memory is read from /proc (VmRSS, and VmHWM: the peak resident set) of the child, so a body
buffered anywhere — our code, uvicorn, httptools — would show. While the abuse runs, an
honest sender keeps delivering signed events and must keep getting quick 200s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ingress.signing import PayPalDevSigner, sign_stripe
from tests.fixtures.ingress import STANDARD_SECRET, STRIPE_SECRET
from tests.security.processes import IngressProcess, ingress_env, new_ingress

MIB = 1024 * 1024
BODY_TIMEOUT_S = 10.0  # IngressContext.body_timeout_s: the bound on receiving a whole body


@pytest.fixture
def ingress_proc(stream_env: dict[str, str], tmp_path: Path) -> Iterator[IngressProcess]:
    env = ingress_env(stream_env, tmp_path / "ingress", stripe_secret=STRIPE_SECRET, standard_secret=STANDARD_SECRET,
                      paypal_webhook_id="SECHOOK", signer=PayPalDevSigner.generate())
    process = new_ingress(env, tmp_path / "ingress.log")
    try:
        yield process.start()
    finally:
        process.stop()


class HonestSender:
    """Signed deliveries, one after another, recording status and latency."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[tuple[int, float]] = []

    async def run(self, stop: asyncio.Event, pause_s: float = 0.05) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while not stop.is_set():
                body = b'{"id":"evt_honest_%d","type":"charge.succeeded"}' % len(self.results)
                started = time.monotonic()
                response = await client.post(f"{self.url}/webhooks/stripe", content=body, headers={
                    "content-type": "application/json",
                    "stripe-signature": sign_stripe(body, STRIPE_SECRET, int(time.time()))})
                self.results.append((response.status_code, time.monotonic() - started))
                await asyncio.sleep(pause_s)

    def check(self, minimum: int) -> None:
        assert len(self.results) >= minimum, self.results
        assert {status for status, _ in self.results} == {200}
        assert max(latency for _, latency in self.results) < 2.0, sorted(lat for _, lat in self.results)[-5:]


async def _open(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


def _head(content: str, *, length: int | None = None, chunked: bool = False) -> bytes:
    framing = f"content-length: {length}\r\n" if length is not None else "transfer-encoding: chunked\r\n" \
        if chunked else ""
    return (f"POST /webhooks/stripe HTTP/1.1\r\nhost: ingress\r\ncontent-type: {content}\r\n"
            f"stripe-signature: t=1,v1=00\r\n{framing}\r\n").encode()


async def _status(reader: asyncio.StreamReader) -> int:
    line = await reader.readline()
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1") else 0


async def huge_chunked(url: str, total: int = 100 * MIB, chunk: int = MIB, *,
                       ignore_answer: bool = False) -> tuple[int, int, float]:
    """Stream `total` bytes chunked; stop when the answer comes (unless told to ignore it) or the
    server hangs up. Returns (status, bytes sent when the answer came, seconds until the answer)."""
    reader, writer = await _open(url)
    started = time.monotonic()
    writer.write(_head("application/json", chunked=True))
    sent = 0
    at_answer: list[tuple[int, float]] = []

    async def read_answer() -> int:
        status = await _status(reader)
        at_answer.append((sent, time.monotonic() - started))
        return status

    answer = asyncio.create_task(read_answer())
    piece = b"%x\r\n%s\r\n" % (chunk, b" " * chunk)
    try:
        while sent < total and (ignore_answer or not answer.done()):
            writer.write(piece)
            await writer.drain()
            sent += chunk
            # drain() returns without yielding while loopback buffers absorb the bytes: let the answer's
            # reader run, or `sent` counts what this client wrote before it looked, not when the 413 came
            await asyncio.sleep(0)
        if not answer.done():
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    status = await asyncio.wait_for(answer, 30)
    writer.close()
    return status, *at_answer[0]


async def test_huge_bodies_are_refused_early_with_bounded_memory(ingress_proc: IngressProcess) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for i in range(30):  # warm up: imports, caches and allocator settle before the baseline
            body = b'{"id":"evt_warm_%d"}' % i
            await client.post(f"{ingress_proc.url}/webhooks/stripe", content=body, headers={
                "content-type": "application/json",
                "stripe-signature": sign_stripe(body, STRIPE_SECRET, int(time.time()))})
    before = ingress_proc.memory_kib()
    # declared too large: refused from the headers, before any body byte is read
    started = time.monotonic()
    reader, writer = await _open(ingress_proc.url)
    writer.write(_head("application/json", length=100 * MIB) + b"{}")
    assert await asyncio.wait_for(_status(reader), 5) == 413 and time.monotonic() - started < 1
    writer.close()

    stop = asyncio.Event()
    honest = HonestSender(ingress_proc.url)
    sender = asyncio.create_task(honest.run(stop))
    results = await asyncio.gather(*(huge_chunked(ingress_proc.url, ignore_answer=i % 2 == 1) for i in range(4)))
    stop.set()
    await sender
    after = ingress_proc.memory_kib()
    for status, sent, seconds in results:  # answered after a few MiB (socket buffers), in well under a second
        assert status == 413
        assert seconds < 2, results
        assert sent < 32 * MIB, results
    honest.check(minimum=1)
    # four 100 MB uploads at once: the peak grows by a few MiB (each body is dropped after 1 MiB)
    assert after["VmHWM"] - before["VmHWM"] < 48 * 1024, (before, after)
    assert after["VmRSS"] - before["VmRSS"] < 32 * 1024, (before, after)


async def test_slowloris_is_cut_off_and_others_are_served(ingress_proc: IngressProcess) -> None:
    before = ingress_proc.memory_kib()
    slow_bodies: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    slow_heads: list[asyncio.StreamWriter] = []
    for _ in range(100):  # complete headers, then a body that trickles
        reader, writer = await _open(ingress_proc.url)
        writer.write(_head("application/json", length=10_000))
        slow_bodies.append((reader, writer))
    for _ in range(100):  # headers that never end
        _, writer = await _open(ingress_proc.url)
        writer.write(b"POST /webhooks/stripe HTTP/1.1\r\nhost: ingress\r\n")
        slow_heads.append(writer)

    async def trickle(writer: asyncio.StreamWriter, stop: asyncio.Event, piece: bytes = b" ") -> None:
        while not stop.is_set():
            try:
                writer.write(piece)
                await writer.drain()
            except (ConnectionError, OSError):
                return
            await asyncio.sleep(0.5)

    stop = asyncio.Event()
    started = time.monotonic()
    trickles = [asyncio.create_task(trickle(w, stop)) for _, w in slow_bodies] + \
        [asyncio.create_task(trickle(w, stop, b"x-slow: 1\r\n")) for w in slow_heads]
    honest = HonestSender(ingress_proc.url)
    sender = asyncio.create_task(honest.run(stop, pause_s=0.1))
    statuses = await asyncio.wait_for(asyncio.gather(*(_status(r) for r, _ in slow_bodies)),
                                      BODY_TIMEOUT_S + 10)
    elapsed = time.monotonic() - started
    during = ingress_proc.memory_kib()
    stop.set()
    await asyncio.gather(sender, *trickles)
    for writer in [w for _, w in slow_bodies] + slow_heads:
        writer.close()
    assert statuses == [408] * len(slow_bodies)
    assert elapsed < BODY_TIMEOUT_S + 5
    honest.check(minimum=20)
    assert during["VmRSS"] - before["VmRSS"] < 32 * 1024, (before, during)
    # the ingress is still fine afterwards
    async with httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(f"{ingress_proc.url}/health")).status_code == 200




async def test_header_flood_is_bounded(ingress_proc: IngressProcess) -> None:
    before = ingress_proc.memory_kib()
    _, writer = await _open(ingress_proc.url)
    writer.write(b"POST /webhooks/stripe HTTP/1.1\r\nhost: ingress\r\n")
    lines = (b"x-flood: " + b"a" * 8000 + b"\r\n") * 16
    sent = 0
    try:
        while sent < 64 * MIB:
            writer.write(lines)
            await writer.drain()
            sent += len(lines)
    except (ConnectionError, OSError):
        pass
    after = ingress_proc.memory_kib()
    writer.close()
    assert after["VmRSS"] - before["VmRSS"] < 16 * 1024, (sent, before, after)
