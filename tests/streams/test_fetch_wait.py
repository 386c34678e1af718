"""The worker consumer's short fetch wait (`streams/fetch_wait.py`) is kept with the rebalance fix it builds on."""

from __future__ import annotations

import faust
import pytest

from paystream.core.broker import worker_fetch_max_wait_ms
from streams.fetch_wait import use_worker_fetch_wait
from streams.rebalance import SnapshotFetchConsumer, use_snapshot_fetches


@pytest.mark.parametrize("embedded", [True, False], ids=["embedded", "apache-kafka"])
async def test_the_worker_consumer_gets_the_short_wait_and_keeps_the_snapshot_fetches(embedded: bool) -> None:
    app = faust.App("fetch-wait-test", broker="kafka://127.0.0.1:1")
    use_snapshot_fetches(app)
    use_worker_fetch_wait(app, worker_fetch_max_wait_ms(embedded=embedded))
    consumer = app.consumer  # built as the worker builds it, never started: no connection
    assert isinstance(consumer, SnapshotFetchConsumer)
    try:
        worker_consumer = consumer._thread._create_worker_consumer(app.transport)
        try:
            assert worker_consumer._fetch_max_wait_ms == worker_fetch_max_wait_ms(embedded=embedded) < 1500
        finally:
            await worker_consumer.stop()
    finally:
        consumer._thread.thread_loop.close()  # the consumer thread's own loop, made with it and never run


def test_the_snapshot_fetches_refuse_to_replace_a_consumer_class_already_changed() -> None:
    app = faust.App("fetch-wait-order-test", broker="kafka://127.0.0.1:1")
    use_worker_fetch_wait(app, 20)
    with pytest.raises(RuntimeError, match="call use_snapshot_fetches first"):
        use_snapshot_fetches(app)
