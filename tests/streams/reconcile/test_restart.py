"""kill -9 in the middle of a window, restart on the same data dir: the same windows as an uninterrupted run.

The uninterrupted run is `test_worker_day` (same script, same books); here the worker
is killed while the day streams in with small batches, so placements of open windows
are in its tables, in flight and uncommitted, and more input arrives while it is down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from schemas.topics import TopicCatalog
from tests.fixtures.streams import WorkerProcess
from tests.streams.reconcile.conftest import Windows, publish, wait_until
from tests.streams.reconcile.day import script
from tests.streams.reconcile.test_worker_day import final_results, first_results


@pytest.mark.both_brokers
async def test_kill_9_mid_window_and_restart_gives_the_same_windows(
        kafka: Any, worker_factory: Callable[..., WorkerProcess], topics: TopicCatalog, producer_factory: Any,
        windows: Windows) -> None:
    day = script(seed=11, partitions=topics.partitions)
    worker = worker_factory(PAYSTREAM_STREAM_BATCH_SIZE="10", PAYSTREAM_STREAM_BATCH_MS="5")
    producer = await producer_factory()
    await publish(producer, topics, day.ledger)
    await wait_until(lambda: worker.get("/reconciliation/summary").json()["worker"]["join"]["ledger"]
                     >= len(day.ledger), what="ledger read")
    stream = day.ordered_stream()
    await publish(producer, topics, stream[: len(stream) * 2 // 3])

    def mid_day() -> bool:
        summary = worker.get("/reconciliation/summary").json()["worker"]
        return bool(summary["join"]["events"] >= len(stream) // 4 and summary["open_windows"] > 0)

    await wait_until(mid_day, what="half-way through the day")
    worker.kill()
    await publish(producer, topics, stream[len(stream) * 2 // 3:] + day.sweep)
    worker.start().wait_ready()

    expected = day.first()
    await windows.until(lambda rs: len(first_results(rs)) >= len(expected), worker=worker)
    assert first_results(windows.records) == expected
    await publish(producer, topics, day.late)
    final = day.final()
    await windows.until(lambda rs: final_results(rs) == final, worker=worker)
    assert worker.starts == 2
