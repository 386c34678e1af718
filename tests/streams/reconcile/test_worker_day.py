"""The scripted day on a real worker: the emitted windows equal the books, and only event time closes them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from schemas.records import ReconciliationWindow
from schemas.topics import TopicCatalog
from tests.fixtures.streams import WorkerProcess
from tests.streams.reconcile.conftest import Windows, expected_closed, publish, wait_until
from tests.streams.reconcile.day import script
from tests.streams.reconcile.support import at


def first_results(records: list[ReconciliationWindow]) -> dict[str, ReconciliationWindow]:
    return {w.key: w for w in records if w.revision == 0}


def final_results(records: list[ReconciliationWindow]) -> dict[str, ReconciliationWindow]:
    latest: dict[str, ReconciliationWindow] = {}
    for w in records:
        if w.key not in latest or w.revision >= latest[w.key].revision:
            latest[w.key] = w
    return {k: replace(w, revision=min(w.revision, 1)) for k, w in latest.items()}


async def test_scripted_day_on_a_real_worker(worker_factory: Callable[..., WorkerProcess], topics: TopicCatalog,
                                            producer_factory: Any, windows: Windows) -> None:
    day = script(partitions=topics.partitions)
    worker = worker_factory()
    producer = await producer_factory()
    await publish(producer, topics, day.ledger)
    await wait_until(lambda: worker.get("/reconciliation/summary").json()["worker"]["join"]["ledger"]
                     >= len(day.ledger), what="ledger read")

    # Morning to noon: exactly the windows whose end + grace every partition's event time has passed close.
    stream = day.ordered_stream()
    morning = [e for e in stream if e.occurred_at < at(12)]
    expected = day.first()
    starts = {k: w.window_start for k, w in expected.items()}
    closed = expected_closed(morning, topics.partitions, expected, starts)
    assert 5 < len(closed) < len(expected)
    await publish(producer, topics, morning)
    await windows.until(lambda rs: closed <= set(first_results(rs)), worker=worker)
    await windows.settle()
    assert set(first_results(windows.records)) == closed, "a window closed before event time reached it"

    # The rest of the day and the next morning's sweep: every first result, equal to the books.
    await publish(producer, topics, [e for e in stream if e.occurred_at >= at(12)] + day.sweep)
    await windows.until(lambda rs: len(first_results(rs)) >= len(expected), worker=worker)
    assert first_results(windows.records) == expected

    # After grace: corrections, never silently dropped.
    await publish(producer, topics, day.late)
    corrected = day.corrected()
    final = day.final()
    await windows.until(lambda rs: final_results(rs) == final, worker=worker)
    assert {w.key for w in windows.records if w.is_correction} == corrected
    assert all(key.decode() == w.key for key, w in zip(windows.keys, windows.records, strict=True))
    assert windows.keys[0].decode().startswith(("stripe:", "paypal:"))
    assert ":2026-11-02T" in windows.keys[0].decode()
