"""The PostgreSQL sink: production target.

Each table's batch is COPYed into a session-local staging table (created once
per connection, emptied at every commit) and moved with one
`INSERT … SELECT … ON CONFLICT`, which keeps the conflict rules in SQL and runs
at COPY speed. TCP keepalives make a vanished server fail fast instead of hanging.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

import psycopg

from connectors.base import DeadLetterFn
from connectors.database import DatabaseSink
from connectors.errors import ErrorKind, classify_postgres
from connectors.tables import TABLES, Adapters, Row, Table, json_text
from schemas.serde import SchemaRegistry
from schemas.topics import TopicCatalog

__all__ = ["PostgresSink"]


def _identity(value: datetime) -> datetime:
    return value


class PostgresSink(DatabaseSink):
    adapters: ClassVar[Adapters] = Adapters(timestamp=_identity, json=json_text)
    placeholder: ClassVar[str] = "%s"
    backend: ClassVar[str] = "postgresql"

    def __init__(
        self,
        conninfo: str,
        catalog: TopicCatalog,
        *,
        registry: SchemaRegistry | None = None,
        dead_letter: DeadLetterFn | None = None,
        connect_timeout_s: int = 5,
    ) -> None:
        super().__init__(catalog, registry=registry, dead_letter=dead_letter)
        self.conninfo = conninfo
        self._connect_timeout_s = connect_timeout_s
        self._conn: psycopg.Connection[Any] | None = None

    def _connect(self) -> None:
        if self._conn is not None and not self._conn.closed:
            return
        conn = psycopg.connect(
            self.conninfo, autocommit=False, connect_timeout=self._connect_timeout_s,
            application_name="paystream-sink", keepalives=1, keepalives_idle=10, keepalives_interval=5,
            keepalives_count=3,
        )
        try:
            # Rows and their offsets commit together, so a commit lost in a server crash is simply consumed
            # again: no need to wait for the WAL flush on every batch.
            conn.execute("SET synchronous_commit = off")
            for table in TABLES:
                conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS stage_{table.name} "
                             f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            conn.commit()
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _db(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise psycopg.OperationalError("not connected")
        return self._conn

    def _begin(self) -> None:
        """psycopg opens the transaction with the first statement."""

    def _commit(self) -> None:
        self._db().commit()

    def _rollback(self) -> None:
        self._db().rollback()

    def _execute(self, sql: str, params: Sequence[object] = ()) -> int:
        return self._db().execute(sql, params).rowcount

    def _executemany(self, sql: str, rows: Sequence[Row]) -> None:
        with self._db().cursor() as cur:
            cur.executemany(sql, rows)

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return [tuple(r) for r in self._db().execute(sql, params).fetchall()]

    def _bulk(self, table: Table, rows: list[Row]) -> int:
        stage = f"stage_{table.name}"
        with self._db().cursor() as cur:
            with cur.copy(f"COPY {stage} ({', '.join(table.columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(table.insert_select_sql(stage))
            return max(cur.rowcount, 0)  # the stage empties itself at commit

    def _classify(self, exc: BaseException) -> ErrorKind:
        return classify_postgres(exc)  # by SQLSTATE: 54000 is an OperationalError but a row reject
