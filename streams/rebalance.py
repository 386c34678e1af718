"""No fetched record is dropped at the end of a rebalance (workarounds for two faust-streaming bugs).

Faust discards records that aiokafka has already handed out, and so moved its position past, at two
places, counting on a later seek to the committed offsets to read them again. Both were seen on Apache
Kafka after a kill -9 and a restart on the same data dir (a changelog to replay, raw records waiting):
the restarted worker never processed those records, and its commit stopped behind them, or, with no
offset committed yet, went past them (Faust checks no gap before the first acknowledged offset then).

1. **A fetch for no partitions is a fetch for all.** Faust hands aiokafka its *live* set of active
   partitions; aiokafka reads an empty set as "every assigned partition". When recovery pauses the
   changelogs while a fetch waits, the set empties, aiokafka returns every raw record buffered, and
   Faust drops them (not active) with the position past them. The seek that follows cannot help when no
   offset is committed (aiokafka's `seek_to_committed` skips such a partition). Seen: raw offsets 0-150
   of every partition returned while paused. `SnapshotFetchConsumer` passes a view of the live set that
   is never empty (a copy would not do: aiokafka would then hand out, and Faust drop, the records of a
   partition paused while the fetch waits).
2. **The queues are emptied after the seek.** `Recovery.on_recovery_completed` resumes the stream
   partitions, seeks them to their committed offsets, then calls `flow_control.resume()`, which empties
   every agent's queue. Its fetcher already runs (started for the changelogs), so what it hands out in
   between is cleared. Seen: raw offsets 49-153 of every partition in the cleared queues.
   `OrderedRecovery` seeks while they are still paused, clears, and only then resumes them.

On the embedded broker a Fetch waits out its whole max wait (quirk 8), so neither window was usually hit.
Both are broker-neutral and installed per app (Faust's `TableManager` setting and its transport's
`Consumer` class), so no Faust class is patched. Written against faust-streaming 0.15.3:
`tests/streams/test_rebalance.py` fails on another release, so an upgrade has to look at them again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import Consumer

__all__ = ["FAUST_VERSION", "ActivePartitions", "OrderedRecovery", "OrderedTableManager", "SnapshotFetchConsumer",
           "use_snapshot_fetches"]

FAUST_VERSION = "0.15.3"
"""The faust-streaming release whose behaviour these classes correct."""


class ActivePartitions:
    """Faust's live set of active partitions as aiokafka reads it: membership is live, and it is never empty.

    aiokafka's `fetched_records` uses only `bool(partitions)` and `tp in partitions`, at the moment it hands
    records out. Live membership keeps Faust's behaviour for a partition paused while the fetch waits (its
    records stay buffered in aiokafka, not handed out and dropped); never-empty keeps an emptied set from
    meaning "all partitions"."""

    def __init__(self, live: set[Any]) -> None:
        self._live = live

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: object) -> bool:
        return tp in self._live


class SnapshotFetchConsumer(Consumer):
    """Faust's aiokafka consumer, whose fetches never ask aiokafka for "all partitions" by accident."""

    async def _getmany(self, active_partitions: set[Any] | None, timeout: float) -> Any:  # noqa: ASYNC109
        # (Faust's signature.) Faust calls this only with a non-empty set, or None when client-only
        partitions = ActivePartitions(active_partitions) if active_partitions is not None else None
        return await super()._getmany(partitions, timeout)  # type: ignore[arg-type]  # read as a set by aiokafka


def use_snapshot_fetches(app: faust.App) -> None:
    """Give `app`'s transport `SnapshotFetchConsumer` (before its consumer is created, and before any other
    change of its consumer class, e.g. `streams.fetch_wait.use_worker_fetch_wait`, which builds on it: replacing
    that class here would undo the other change without a word)."""
    if app.transport.Consumer is not Consumer:
        raise RuntimeError(f"the transport's consumer class is already {app.transport.Consumer.__qualname__}: "
                           "call use_snapshot_fetches first")
    app.transport.Consumer = SnapshotFetchConsumer  # type: ignore[misc]  # a ClassVar in Faust: set for this app


class OrderedRecovery(Recovery):
    """`Recovery` whose completion resumes the stream partitions only after their queues are cleared."""

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Faust's steps, reordered: seek, clear the queues, then resume the stream partitions and the flow."""
        app: Any = self.app
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [asyncio.ensure_future(table.on_recovery_completed(self.actives_for_table[table],
                                                                       self.standbys_for_table[table]))
                     for table in self.tables.values()]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning(f"Recovery rebalancing again app id {app.consumer_generation_id} param {generation_id}")
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            # still paused: nothing fetched for them is handed out until they are resumed below
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        self.completed.set()
        app.flow_control.resume()  # empties the agents' queues: only records from before the seek can be in them
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


class OrderedTableManager(TableManager):
    """Faust's `TableManager` with `OrderedRecovery` (the app's `TableManager` setting)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = OrderedRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


# Log as Faust's own services do, so the worker's levels for Faust's loggers still apply to them
# (mode names a subclass's logger after its module, which would log every recovery table at INFO).
OrderedRecovery.logger = Recovery.logger
OrderedTableManager.logger = TableManager.logger
SnapshotFetchConsumer.logger = Consumer.logger
