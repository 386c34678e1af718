"""`paystream worker` stops within `PAYSTREAM_WORKER_STOP_TIMEOUT_S`, also when its broker is gone."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paystream.core.broker import EmbeddedBroker, free_port
from tests.fixtures.streams import WorkerProcess

UNCLEAN = "exiting without a clean stop"


def start_worker(env: dict[str, str], broker: EmbeddedBroker, tmp_path: Path, stop_timeout_s: float) -> WorkerProcess:
    port = free_port()
    worker = WorkerProcess("worker", ["worker"], {**env, "PAYSTREAM_KAFKA_BOOTSTRAP": broker.bootstrap,
                                                  "PAYSTREAM_WORKER_PORT": str(port),
                                                  "PAYSTREAM_WORKER_STOP_TIMEOUT_S": str(stop_timeout_s)},
                           port, tmp_path / "worker.log")
    return worker.start().wait_ready()


def test_a_stop_against_a_dead_broker_ends_at_the_timeout(stream_env: dict[str, str],
                                                         broker_factory: Callable[..., Any], tmp_path: Path) -> None:
    broker = broker_factory().start()
    worker = start_worker(stream_env, broker, tmp_path, stop_timeout_s=5)
    try:
        broker.kill()
        started = time.monotonic()
        code = worker.stop(timeout_s=60)  # without the bound: 63 s here, minutes on Apache Kafka
        took = time.monotonic() - started
    finally:
        worker.kill()
    assert code == 1, worker.tail()
    assert 5 <= took < 20, took
    assert UNCLEAN in worker.tail(), worker.tail()


def test_a_healthy_stop_is_clean(stream_env: dict[str, str], broker_factory: Callable[..., Any],
                                 tmp_path: Path) -> None:
    broker = broker_factory().start()
    worker = start_worker(stream_env, broker, tmp_path, stop_timeout_s=30)
    try:
        code = worker.stop(timeout_s=60)
    finally:
        worker.kill()
    assert code == 0, worker.tail()
    assert UNCLEAN not in worker.tail()
