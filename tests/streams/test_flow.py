"""A redundant `resume()` keeps what the stream queues hold; resuming a suspended flow still clears them.

The race this closes (Faust's recovery resuming an already active flow while the fetcher has filled the
queues) is shown end to end by tests/streams/reconcile/test_restart.py on Apache Kafka.
"""

from __future__ import annotations

from pathlib import Path

import faust
import pytest

from paystream.core.settings import Settings
from streams.app import create_worker
from streams.flow import KeepingFlowControl, use_keeping_flow_control


async def test_a_resume_while_flowing_keeps_the_queued_records() -> None:
    app = faust.App("flow-test", broker="kafka://127.0.0.1:9")
    flow = use_keeping_flow_control(app)
    queue = app.FlowControlQueue(maxsize=10, clear_on_resume=True)  # what Faust gives every stream channel
    flow.resume()
    queue.put_nowait("fetched for the current assignment")
    flow.resume()  # what Faust's on_recovery_completed does while the fetcher runs
    assert queue.qsize() == 1 and flow.kept == 1
    flow.suspend()  # a rebalance: what is queued may belong to partitions now elsewhere
    flow.resume()
    assert queue.qsize() == 0


def test_the_worker_uses_it_and_it_must_come_first(tmp_path: Path) -> None:
    worker = create_worker(Settings(kafka_bootstrap="127.0.0.1:9", embedded_broker=False, data_dir=tmp_path))
    assert isinstance(worker.app.flow_control, KeepingFlowControl)
    app = faust.App("flow-late", broker="kafka://127.0.0.1:9")
    assert app.flow_control is not None  # queues may already have registered with Faust's own
    with pytest.raises(RuntimeError):
        use_keeping_flow_control(app)
