"""Ingress fixtures: a real uvicorn server in a thread, with a pinned clock.

`ingress_factory(settings=..., **overrides)` starts `create_app(...)` on a free port
and returns a handle with `.url`, `.clock` and `.app`; every server is shut down
at teardown.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from ingress import create_app
from paystream.broker import free_port
from paystream.settings import Settings

STRIPE_SECRET = "whsec_test_secret"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class FakeClock:
    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


@dataclass
class RunningIngress:
    url: str
    app: FastAPI
    clock: FakeClock
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def _serve(app: FastAPI, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on",
                            loop="asyncio", http="h11")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("ingress test server did not start")
        time.sleep(0.01)
    return server, thread


@pytest.fixture
def ingress_settings_factory(kafka: Any, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "kafka_bootstrap": kafka.bootstrap,
            "embedded_broker": kafka.is_embedded,
            "stripe_webhook_secrets": [STRIPE_SECRET],
            "standard_webhook_secrets": {"acme": [STANDARD_SECRET]},
            "paypal_webhook_id": ["WEBHOOK_ID"],
            "data_dir": tmp_path / "data",
            "publish_timeout_s": 2.0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def ingress_factory(ingress_settings_factory: Callable[..., Settings]) -> Iterator[Callable[..., RunningIngress]]:
    running: list[RunningIngress] = []

    def start(settings: Settings | None = None, *, now: float | None = None, **overrides: Any) -> RunningIngress:
        settings = settings or ingress_settings_factory()
        clock = FakeClock() if now is None else FakeClock(now)
        app = create_app(settings, clock=clock, **overrides)
        port = free_port()
        server, thread = _serve(app, port)
        handle = RunningIngress(f"http://127.0.0.1:{port}", app, clock, settings, server, thread)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.stop()
