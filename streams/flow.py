"""Stream flow control that never drops records fetched for the current assignment.

Faust parks every fetched record in a stream's queue, and mode's `FlowControlEvent.resume()` empties
all those queues on *every* call, also when the flow was never suspended. Faust's table recovery
calls it while records already wait there: when a rebalance has changelog records to restore it
starts the fetcher early, then `on_recovery_completed` resumes the stream partitions, awaits the
seek to the committed offsets (one round trip per partition) while the fetcher delivers, and only
then calls `resume()`. The records in the queues are dropped although the consumer's position is
already past them, so they are read again only after the next seek (restart or rebalance).
Measured on Apache Kafka after a kill -9 (tests/streams/reconcile/test_restart.py): the restarted
worker processed 25 of each input partition's records and never the rest; with a committed offset
the same race drops the records of the partitions already seeked (missing payments in a window).

Clearing is right when the flow was suspended (a rebalance: what is queued may belong to partitions
now elsewhere, and is read again from the committed offsets); Faust also clears at the suspension
itself. While the flow is active everything queued was fetched for the current assignment, so a
redundant `resume()` here keeps it; a record the seek then moves back over comes again as a replay,
which every stage already treats as one.
"""

from __future__ import annotations

import logging

import faust
from mode.utils.queues import FlowControlEvent

__all__ = ["KeepingFlowControl", "use_keeping_flow_control"]

log = logging.getLogger("paystream.streams")


class KeepingFlowControl(FlowControlEvent):
    """`FlowControlEvent` whose `resume()` clears the stream queues only when the flow was suspended."""

    kept = 0
    """Records a redundant `resume()` left queued (Faust would have dropped them); for logs and tests."""

    def resume(self) -> None:
        if not self.is_active():
            super().resume()
            return
        queued = sum(queue.qsize() for queue in self._queues)
        if queued:
            self.kept += queued
            log.info("stream flow already active: kept the queued records Faust's resume would drop",
                     extra={"records": queued})


def use_keeping_flow_control(app: faust.App) -> KeepingFlowControl:
    """Give `app` a `KeepingFlowControl` (no class is patched).

    Must run before any stream, table or channel of the app exists: each queue registers with the
    app's flow control when it is created."""
    if "flow_control" in app.__dict__:  # mode's cached_property keeps the value in the instance dict
        raise RuntimeError("the app's flow control is already in use; install KeepingFlowControl first")
    flow = KeepingFlowControl(loop=app.loop)
    app.flow_control = flow  # mode's cached_property stores a value set on the instance
    return flow
