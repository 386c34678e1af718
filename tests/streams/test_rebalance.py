"""No fetched stream record is dropped at the end of a rebalance (`streams/rebalance.py`).

A model of the consumer: a fetcher that keeps running and hands every record of a resumed stream
partition to the agent's queue as soon as the event loop lets it (as Faust's does once it was started
for the changelogs, with the flow resumed), and a flow-control resume that empties that queue.
Faust's own `on_recovery_completed` loses the records fetched after its seek; ours loses none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.tables.recovery import Recovery
from faust.types import TP

from streams.rebalance import (
    FAUST_VERSION,
    OrderedRecovery,
    OrderedTableManager,
    SnapshotFetchConsumer,
    use_snapshot_fetches,
)

RAW = TP("raw", 0)
CHANGELOG = TP("table-changelog", 0)


class ModelConsumer:
    """Committed offset 40 of 100 records; the fetcher position is wherever it last handed out."""

    def __init__(self) -> None:
        self.committed, self.end = 40, 100
        self.position = self.committed
        self.paused = {RAW, CHANGELOG}
        self.queue: list[int] = []

    def fetch(self) -> None:
        """The running fetcher: every record of a resumed partition goes to the agent's queue."""
        if RAW not in self.paused:
            self.queue.extend(range(self.position, self.end))
            self.position = self.end

    def assignment(self) -> set[TP]:
        return {RAW, CHANGELOG}

    def resume_partitions(self, tps: set[TP]) -> None:
        self.paused -= tps

    async def perform_seek(self) -> None:
        self.position = self.committed
        await asyncio.sleep(0)
        self.fetch()  # the fetcher's thread answers while the seek is awaited

    def resume_flow(self) -> None:
        self.fetch()


def recovery_model(consumer: ModelConsumer) -> Any:
    async def done(*_: Any, **__: Any) -> None:
        return None

    async def wait(coro: Awaitable[None], timeout: float | None = None) -> None:
        await coro

    app = SimpleNamespace(
        consumer=consumer, consumer_generation_id=1, conf=SimpleNamespace(broker_request_timeout=5.0),
        on_rebalance_complete=SimpleNamespace(send=done), _fetcher=SimpleNamespace(maybe_start=done),
        flow_control=SimpleNamespace(resume=consumer.queue.clear), assignor=SimpleNamespace(assigned_standbys=set),
        on_rebalance_end=lambda: None)
    log = SimpleNamespace(info=lambda *a: None, warning=lambda *a: None, dev=lambda *a: None)
    tables = SimpleNamespace(values=list, on_actives_ready=lambda: None, on_standbys_ready=lambda: None)
    return SimpleNamespace(app=app, log=log, tables=tables, actives_for_table={}, standbys_for_table={},
                           completed=asyncio.Event(), _wait=wait, _set_recovery_ended=lambda: None,
                           _is_changelog_tp=lambda tp: tp == CHANGELOG)


@pytest.mark.parametrize(("completion", "lost"), [(Recovery.on_recovery_completed, True),
                                                  (OrderedRecovery.on_recovery_completed, False)],
                         ids=["faust-0.15.3-loses-them", "ordered"])
async def test_records_fetched_at_the_end_of_recovery_reach_the_agent(completion: Any, lost: bool) -> None:
    consumer = ModelConsumer()
    await completion(recovery_model(consumer), 1)
    assert consumer.position == consumer.end  # the consumer will not read them again in either case
    delivered = set(consumer.queue)
    assert (delivered != set(range(40, 100))) is lost, sorted(delivered)


async def test_a_fetch_never_asks_aiokafka_for_all_partitions() -> None:
    """Faust's set is live: emptied while a fetch waits, aiokafka would read it as every partition."""
    asked: list[Any] = []

    async def getmany(partitions: Any, timeout: float) -> dict[TP, list[Any]]:
        asked.append(partitions)
        return {}

    consumer = SnapshotFetchConsumer.__new__(SnapshotFetchConsumer)
    consumer._thread = SimpleNamespace(getmany=getmany)
    active = {CHANGELOG}
    await consumer._getmany(active, 1.0)
    active.clear()  # recovery pauses the changelogs while the fetch waits
    partitions = asked[0]
    assert bool(partitions) and CHANGELOG not in partitions and RAW not in partitions  # none, not all
    active.add(RAW)  # membership stays live, as aiokafka checks it when it hands records out
    assert RAW in partitions


def test_the_worker_app_uses_both() -> None:
    app = faust.App("rebalance-test", TableManager=OrderedTableManager)
    use_snapshot_fetches(app)
    assert isinstance(app.tables.recovery, OrderedRecovery)
    assert app.transport.Consumer is SnapshotFetchConsumer


def test_written_for_this_faust_release() -> None:
    """Both restate or depend on Faust internals: another release needs a fresh look at them."""
    assert faust.__version__ == FAUST_VERSION
