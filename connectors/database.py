"""`DatabaseSink`: the flush algorithm shared by the SQLite and PostgreSQL sinks.

Database work is synchronous (sqlite3, psycopg 3) and runs on one dedicated
thread, so the event loop keeps heartbeating the consumer group while a batch
is written. One flush is:

1. build rows from the buffer (decode failures become rejects);
2. in one transaction, bulk-write every table; if the database refuses the bulk
   write for a row's sake (constraint, bad data, a value over a program limit —
   `connectors/errors.py` classifies by SQLSTATE), roll back and write row by row
   under savepoints, so only the refused rows become rejects and the others land;
3. if there are rejects, publish them to the dead-letter topic and wait for the
   broker, with the transaction still open;
4. write the next offsets into `sink_offsets` and commit (without rejects, steps
   1-4 are one call on the database thread).

A crash anywhere before 4 commits nothing; a replay after it rewrites the same
rows, which the conflict rules make a no-op. A lost connection or a locked
database anywhere becomes `SinkBackpressureError` with the buffer kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import ClassVar, TypeVar

from connectors.base import DeadLetterFn, FlushResult, Rejected, Sink, SinkRecord, TopicPartitionKey
from connectors.batch import Batch, BatchBuilder
from connectors.divergence import Verdicts, check_payments, flag_sql, load_stored
from connectors.errors import ErrorKind
from connectors.exceptions import SinkBackpressureError
from connectors.tables import PAYMENT_EVENTS, PAYMENTS, SINK_OFFSETS, Adapters, Row, Table
from schemas.clock import now_ms
from schemas.serde import SchemaRegistry
from schemas.topics import TopicCatalog

__all__ = ["DatabaseSink", "ErrorKind"]

_RECEIVED_AT_MS = PAYMENT_EVENTS.columns.index("received_at_ms")
_PAYMENT_ID, _PROVIDER = PAYMENTS.columns.index("payment_id"), PAYMENTS.columns.index("provider")

log = logging.getLogger("paystream.sink")

T = TypeVar("T")


class DatabaseSink(Sink):
    """Buffering, the database thread and the transaction protocol; subclasses speak one driver."""

    adapters: ClassVar[Adapters]
    placeholder: ClassVar[str]
    backend: ClassVar[str]

    def __init__(
        self,
        catalog: TopicCatalog,
        *,
        registry: SchemaRegistry | None = None,
        dead_letter: DeadLetterFn | None = None,
    ) -> None:
        self.catalog = catalog
        self._builder = BatchBuilder(catalog, registry)
        self._dead_letter = dead_letter
        self._buffer: list[SinkRecord] = []
        self._inflight: list[SinkRecord] = []
        self._incarnation = ""
        self._executor: ThreadPoolExecutor | None = None

    # -- driver hooks (all called on the database thread) ---------------------

    @abstractmethod
    def _connect(self) -> None:
        """Open the connection if it is not open."""

    @abstractmethod
    def _close(self) -> None:
        """Close the connection, ignoring errors (it may already be dead)."""

    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement; return the rows it changed."""

    @abstractmethod
    def _executemany(self, sql: str, rows: Sequence[Row]) -> None: ...

    @abstractmethod
    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Row]: ...

    @abstractmethod
    def _classify(self, exc: BaseException) -> ErrorKind:
        """reject: this row is refused; unavailable: retry later; bug: let it crash (`connectors/errors.py`)."""

    def _bulk(self, table: Table, rows: list[Row]) -> int:
        """Write many rows of one table; the default is one statement per row in a loop."""
        return sum(self._execute(table.insert_sql(self.placeholder), row) for row in rows)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sink-{self.backend}")

    async def stop(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, self._close)
            executor.shutdown(wait=True)

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the database thread; driver trouble becomes backpressure."""
        if self._executor is None:
            raise RuntimeError("sink not started")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._guarded, fn)

    def _guarded(self, fn: Callable[[], T]) -> T:
        try:
            self._connect()
            return fn()
        except BaseException as exc:
            kind = "unavailable" if isinstance(exc, SinkBackpressureError) else self._classify(exc)
            if kind == "unavailable":
                self._close()
                if isinstance(exc, SinkBackpressureError):
                    raise
                raise SinkBackpressureError(f"{self.backend} unavailable: {type(exc).__name__}: {exc}") from exc
            self._safe_rollback()
            raise

    def _safe_rollback(self) -> None:
        try:
            self._rollback()
        except Exception as exc:  # noqa: BLE001 - the connection is already in trouble; drop it
            log.debug("rollback failed; closing the connection", extra={"error": repr(exc)})
            self._close()

    # -- buffer ----------------------------------------------------------------

    def add(self, record: SinkRecord) -> None:
        self._buffer.append(record)

    def extend(self, records: Iterable[SinkRecord]) -> None:
        self._buffer.extend(records)

    @property
    def pending(self) -> int:
        return len(self._buffer) + len(self._inflight)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def discard(self, partitions: Iterable[TopicPartitionKey]) -> int:
        gone = set(partitions)
        before = self.pending
        self._buffer = [r for r in self._buffer if r.tp not in gone]
        # A flush in progress still writes its own snapshot (harmless: rows are idempotent and offsets never
        # move backwards); this only keeps a failed flush from putting the records back.
        self._inflight = [r for r in self._inflight if r.tp not in gone]
        return before - self.pending

    # -- flush -----------------------------------------------------------------

    async def flush(self) -> FlushResult:
        """Write what is buffered now; records added meanwhile wait for the next flush.

        On any failure the batch goes back to the front of the buffer, so a retry writes the
        same records first and per-partition order is kept.
        """
        if self._inflight:
            raise RuntimeError("a flush is already in progress")
        records, self._buffer = self._buffer, []
        if not records:
            return FlushResult()
        self._inflight = records
        started = time.perf_counter()
        now = now_ms()
        try:
            batch, rows, dead = await self._run(lambda: self._write(records, now))
            if dead and self._dead_letter is not None:  # the transaction is open: publish first, then commit
                try:
                    await self._dead_letter(dead)
                except BaseException as exc:
                    await self._run(self._safe_rollback)
                    if isinstance(exc, asyncio.CancelledError | SinkBackpressureError):
                        raise
                    raise SinkBackpressureError(
                        f"dead-letter topic unavailable: {type(exc).__name__}: {exc}") from exc
                await self._run(lambda: self._commit_offsets(batch.offsets, now))
        except BaseException:
            self._buffer = self._inflight + self._buffer
            raise
        finally:
            self._inflight = []
        events = batch.tables.get(PAYMENT_EVENTS.name)
        received = [row[_RECEIVED_AT_MS] for row in events.rows] if events is not None else []
        return FlushResult(records=batch.records, rows=rows, rejected=batch.rejected, offsets=batch.offsets,
                           seconds=time.perf_counter() - started, received_ms=received, diverged=batch.diverged)

    def _dead_letters(self, rejected: list[Rejected]) -> list[Rejected]:
        """Rejects to publish; a dead letter the database refuses is logged, never re-dead-lettered (no loops)."""
        out = []
        for item in rejected:
            if item.record.topic == self._builder.dlq_topic:
                log.error("dead letter refused by the database; skipped",
                          extra={"topic": item.record.topic, "partition": item.record.partition,
                                 "offset": item.record.offset, "error": repr(item.error)})
            else:
                out.append(item)
        return out

    def _write(self, records: list[SinkRecord], now: datetime) -> tuple[Batch, dict[str, int], list[Rejected]]:
        """Write the rows; commit at once unless rejects must reach the dead-letter topic first (returned)."""
        batch = self._builder.build(records, incarnation=self._incarnation, adapters=self.adapters, now=now)
        self._begin()
        verdicts = self._check_payments(batch)
        try:
            rows = {name: self._bulk(t.table, t.table.dedupe(t.rows)) for name, t in batch.tables.items() if t.rows}
        except Exception as exc:
            if self._classify(exc) != "reject":
                raise
            log.warning("database refused a batch; retrying row by row to isolate the bad rows",
                        extra={"error": f"{type(exc).__name__}: {exc}", "records": len(records)})
            self._rollback()
            self._begin()
            rows = self._write_rows(batch)
        if verdicts is not None:
            for (payment_id, provider), text in verdicts.flag_stored.items():
                self._execute(flag_sql(self.placeholder), (text, payment_id, provider))
        dead = self._dead_letters(batch.rejected)
        if not dead or self._dead_letter is None:
            self._commit_offsets(batch.offsets, now)
            return batch, rows, []
        return batch, rows, dead

    def _check_payments(self, batch: Batch) -> Verdicts | None:
        """Compare the batch's payment states with the stored rows (`connectors/divergence.py`); every
        divergence is counted in the flush result and logged with the payment and both versions."""
        payments = batch.tables.get(PAYMENTS.name)
        if payments is None or not payments.rows:
            return None
        keys = {(row[_PAYMENT_ID], row[_PROVIDER]) for row in payments.rows}
        verdicts = check_payments(payments.rows, load_stored(self._query, self.placeholder, keys), self._incarnation)
        for found in verdicts.divergences:
            log.warning("payment state diverged: neither state includes the other's events; the row keeps the "
                        "higher version and lists the events it lacks in payments.diverged_events "
                        "(fix: paystream state rebuild --payment)",
                        extra={"payment_id": found.payment_id, "provider": found.provider,
                               "stored_version": found.stored_version, "incoming_version": found.incoming_version,
                               "only_stored": found.only_stored, "only_incoming": found.only_incoming})
        batch.diverged += len(verdicts.divergences)
        return verdicts

    def _write_rows(self, batch: Batch) -> dict[str, int]:
        changed: dict[str, int] = {}
        for name, target in batch.tables.items():
            sql = target.table.insert_sql(self.placeholder)
            for row, source in zip(target.rows, target.sources, strict=True):
                self._execute("SAVEPOINT sink_row")
                try:
                    changed[name] = changed.get(name, 0) + self._execute(sql, row)
                except Exception as exc:
                    if self._classify(exc) != "reject":
                        raise
                    self._execute("ROLLBACK TO SAVEPOINT sink_row")
                    batch.rejected.append(Rejected(source, exc))
                self._execute("RELEASE SAVEPOINT sink_row")
        return changed

    def _commit_offsets(self, offsets: dict[TopicPartitionKey, int], now: datetime) -> None:
        stamp = self.adapters.timestamp(now)
        rows = [(topic, partition, offset, self._incarnation, stamp) for (topic, partition), offset in offsets.items()]
        self._executemany(SINK_OFFSETS.insert_sql(self.placeholder), rows)
        self._commit()

    # -- offsets and incarnations ----------------------------------------------

    def _topic_filter(self) -> tuple[str, list[object]]:
        topics = list(self._builder.topics)
        return f"topic IN ({', '.join([self.placeholder] * len(topics))})", list(topics)

    async def stored_offsets(self) -> dict[TopicPartitionKey, int]:
        where, params = self._topic_filter()

        def load() -> list[Row]:
            rows = self._query(f"SELECT topic, partition, next_offset FROM sink_offsets WHERE {where} "  # noqa: S608
                               f"AND cluster_id = {self.placeholder}", [*params, self._incarnation])
            self._rollback()
            return rows

        return {(str(t), int(p)): int(o) for t, p, o in await self._run(load)}

    async def use_incarnation(self, cluster_id: str) -> int:
        where, params = self._topic_filter()

        def reset() -> tuple[list[str], int]:
            self._begin()
            old = [str(r[0]) for r in self._query(
                f"SELECT DISTINCT cluster_id FROM sink_offsets WHERE {where} "  # noqa: S608
                f"AND cluster_id <> {self.placeholder}", [*params, cluster_id])]
            count = self._execute(f"DELETE FROM sink_offsets WHERE {where} "  # noqa: S608
                                  f"AND cluster_id <> {self.placeholder}", [*params, cluster_id]) if old else 0
            self._commit()
            return old, count

        old, count = await self._run(reset)
        if count:
            log.warning(
                "broker incarnation changed: reset %d stored sink offsets so the new broker is read from the "
                "start; existing rows are kept", count,
                extra={"previous_cluster_ids": old, "cluster_id": cluster_id, "backend": self.backend})
        self._incarnation = cluster_id
        return count
