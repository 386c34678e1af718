"""Stream fixtures: real worker processes on the session broker, and raw-record helpers.

`worker_factory()` starts `paystream worker` as a child process with its own topic
prefix, data dir and web port, waits until it is ready, and kills it at teardown
(also after kill -9 tests). `envelope_factory` builds signed-looking envelopes from
fixture payloads; `publish_raw` puts them straight on the raw topic.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from paystream.broker import free_port, producer_options
from schemas.clock import now_ms
from schemas.records import WebhookEnvelope
from schemas.serde import envelope_serde
from schemas.topics import TopicCatalog

OPS_TOKEN = "test-ops-token-0123456789"
PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"


@dataclass
class WorkerProcess:
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WorkerProcess:
        self.starts += 1
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen([sys.executable, "-m", "paystream", "worker"], env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def wait_ready(self, timeout_s: float = 90.0) -> WorkerProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}):\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"worker not ready in {timeout_s}s:\n{self.tail()}")

    def kill(self) -> None:
        """kill -9: no flush, no commit, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {OPS_TOKEN}", **kwargs.pop("headers", {})}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=10, **kwargs)


@pytest.fixture
def stream_env(kafka: Any, topics: TopicCatalog, tmp_path: Path) -> dict[str, str]:
    """Environment for workers of one test: its own topics, consumer group and data dir."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("PAYSTREAM_")},
        "PAYSTREAM_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "PAYSTREAM_EMBEDDED_BROKER": "true" if kafka.is_embedded else "false",
        "PAYSTREAM_TOPIC_PREFIX": topics.prefix,
        "PAYSTREAM_PARTITIONS": str(topics.partitions),
        "PAYSTREAM_DATA_DIR": str(tmp_path / "data"),
        "PAYSTREAM_OPS_TOKEN": OPS_TOKEN,
        "PAYSTREAM_LOG_FORMAT": "console",
        "PAYSTREAM_LOG_LEVEL": "INFO",
        "PAYSTREAM_STREAM_BATCH_MS": "20",
    }


@pytest.fixture
def worker_factory(stream_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def make(*, ready: bool = True, **env: str) -> WorkerProcess:
        port = free_port()
        worker_env = {**stream_env, "PAYSTREAM_WORKER_PORT": str(port), **env}
        handle = WorkerProcess(worker_env, port, tmp_path / f"worker-{len(started)}.log")
        started.append(handle)
        handle.start()
        return handle.wait_ready() if ready else handle

    yield make
    for handle in started:
        handle.kill()


@dataclass
class EnvelopeFactory:
    """Builds raw-topic envelopes; `provider_event_id` defaults to the body's id."""

    sequence: int = 0
    made: list[WebhookEnvelope] = field(default_factory=list)

    def __call__(self, body: bytes, *, provider: str = "stripe", event_id: str | None = None,
                 event_type: str = "unknown", source: str | None = None) -> WebhookEnvelope:
        import orjson

        data = orjson.loads(body) if body[:1] == b"{" else {}
        event_id = event_id or str(data.get("id") or f"evt_{uuid.uuid4().hex[:12]}")
        event_type = data.get("type") or data.get("event_type") or event_type
        self.sequence += 1
        envelope = WebhookEnvelope(
            envelope_id=str(uuid.uuid4()), provider=provider, source=source or provider, provider_event_id=event_id,
            event_type=event_type, received_at=now_ms(), verified_by="test:fixture", body=body,
            content_type="application/json")
        self.made.append(envelope)
        return envelope


@pytest.fixture
def envelope_factory() -> EnvelopeFactory:
    return EnvelopeFactory()


@pytest.fixture
async def publish_raw(kafka: Any, topics: TopicCatalog) -> AsyncIterator[Callable[..., Awaitable[None]]]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, **producer_options(embedded=kafka.is_embedded))
    await producer.start()
    serde = envelope_serde()

    async def publish(*items: WebhookEnvelope | tuple[bytes, bytes]) -> None:
        futures = []
        for item in items:
            if isinstance(item, WebhookEnvelope):
                key, value = item.key.encode(), serde.encode(item)
            else:
                key, value = item
            futures.append(await producer.send(topics.raw, value, key=key))
        await asyncio.gather(*futures)

    yield publish
    await producer.stop()


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()
