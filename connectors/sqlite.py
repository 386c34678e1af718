"""The SQLite sink: the default target, one file under `DATA_DIR`.

WAL mode lets analysts read while the sink writes; `BEGIN IMMEDIATE` takes the
write lock up front so a lock held elsewhere shows up as backpressure before any
work is done; `executemany` inside one transaction per batch is what makes it fast.
`synchronous=NORMAL` can lose the last commits on power loss, but never splits
rows from their offsets (both are in the same transaction), so a lost commit is
simply consumed again.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from connectors.base import DeadLetterFn
from connectors.database import DatabaseSink
from connectors.errors import ErrorKind, classify_sqlite
from connectors.tables import Adapters, Row, Table, json_text
from schemas.serde import SchemaRegistry
from schemas.topics import TopicCatalog

__all__ = ["SqliteSink", "sqlite_timestamp"]


def sqlite_timestamp(value: datetime) -> str:
    """ISO 8601 with milliseconds and the UTC offset: sorts as text, and `date()`/`strftime()` read it."""
    return value.isoformat(timespec="milliseconds")


class SqliteSink(DatabaseSink):
    adapters: ClassVar[Adapters] = Adapters(timestamp=sqlite_timestamp, json=json_text)
    placeholder: ClassVar[str] = "?"
    backend: ClassVar[str] = "sqlite"

    def __init__(
        self,
        path: str | Path,
        catalog: TopicCatalog,
        *,
        registry: SchemaRegistry | None = None,
        dead_letter: DeadLetterFn | None = None,
        busy_timeout_s: float = 2.0,
    ) -> None:
        super().__init__(catalog, registry=registry, dead_letter=dead_letter)
        self.path = str(path)
        self._busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> None:
        if self._conn is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.OperationalError("not connected")
        return self._conn

    def _begin(self) -> None:
        self._db().execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._db().execute("COMMIT")

    def _rollback(self) -> None:
        conn = self._db()
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def _execute(self, sql: str, params: Sequence[object] = ()) -> int:
        return self._db().execute(sql, params).rowcount

    def _executemany(self, sql: str, rows: Sequence[Row]) -> None:
        self._db().executemany(sql, rows)

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return [tuple(r) for r in self._db().execute(sql, params).fetchall()]

    def _bulk(self, table: Table, rows: list[Row]) -> int:
        return max(self._db().executemany(table.insert_sql(self.placeholder), rows).rowcount, 0)

    def _classify(self, exc: BaseException) -> ErrorKind:
        return classify_sqlite(exc)
