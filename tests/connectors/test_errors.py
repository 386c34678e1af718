"""Error classification on errors the real databases raise: rejects are the row's fault, the rest is retried."""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connectors.errors import classify_postgres, classify_sqlite

# Random text does not compress, so PostgreSQL cannot shrink it under the btree limit (2,704 bytes).
LONG_ID = secrets.token_hex(5120)  # 10 KB


def pg_error(url: str, *statements: str) -> psycopg.Error:
    """The error the last statement raises in a fresh session (earlier ones set the scene)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE t (id text PRIMARY KEY, n int CHECK (n >= 0))")
        for sql in statements[:-1]:
            conn.execute(sql)
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(statements[-1])
        return caught.value


@pytest.mark.postgres
@pytest.mark.parametrize(("statement", "sqlstate", "kind"), [
    (f"INSERT INTO t VALUES ('{LONG_ID}', 1)", "54000", "reject"),  # noqa: S608 - a hex literal  # index row size exceeds maximum
    ("INSERT INTO t VALUES ('a', -1)", "23514", "reject"),
    ("INSERT INTO t VALUES ('a', 'x'::int)", "22P02", "reject"),
    ("INSERT INTO t VALUES ('a', 2147483648)", "22003", "reject"),
    ("SELECT pg_sleep(5)", "57014", "unavailable"),  # statement_timeout, set below
    ("INSERT INTO no_such_table VALUES (1)", "42P01", "bug"),
])
def test_postgres_errors_by_sqlstate(postgres_url: str, statement: str, sqlstate: str, kind: str) -> None:
    error = pg_error(postgres_url, "SET statement_timeout = '50ms'", statement)
    assert error.sqlstate == sqlstate
    assert classify_postgres(error) == kind


@pytest.mark.postgres
def test_program_limit_is_an_operational_error_but_a_reject(postgres_url: str) -> None:
    """The bug: psycopg puts 54000 in the OperationalError family, the same as a dead connection."""
    error = pg_error(postgres_url, f"INSERT INTO t VALUES ('{LONG_ID}', 1)")  # noqa: S608 - a hex literal
    assert isinstance(error, psycopg.OperationalError)
    assert classify_postgres(error) == "reject"


@pytest.fixture
def pg_table(postgres_url: str) -> Iterator[str]:
    name = f"lock_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (n int)")
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.mark.postgres
def test_postgres_lock_and_lost_connection_are_backpressure(postgres_url: str, pg_table: str) -> None:
    with psycopg.connect(postgres_url) as holder, psycopg.connect(postgres_url) as waiter:
        holder.execute(f"LOCK TABLE {pg_table} IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(psycopg.Error) as locked:
            waiter.execute(f"LOCK TABLE {pg_table} IN ACCESS EXCLUSIVE MODE NOWAIT")
        assert locked.value.sqlstate == "55P03"
        assert classify_postgres(locked.value) == "unavailable"
        waiter.rollback()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (waiter.info.backend_pid,))
        with pytest.raises(psycopg.Error) as gone:
            waiter.execute("SELECT 1")
        assert classify_postgres(gone.value) == "unavailable"  # 57P01, or no SQLSTATE once the socket is closed
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect("postgresql://postgres@127.0.0.1:1/none", connect_timeout=2)
    assert classify_postgres(refused.value) == "unavailable"


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Callable[..., sqlite3.Connection]:
    path = tmp_path / "errors.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (id text PRIMARY KEY, n int CHECK (n >= 0))")
        conn.commit()

    def connect(**kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = sqlite3.connect(path, isolation_level=None, **kwargs)
        return conn

    return connect


def sqlite_error(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as caught:
        conn.execute(sql, params)
    return caught.value


def test_sqlite_errors_by_result_code(sqlite_db: Callable[..., sqlite3.Connection]) -> None:
    with contextlib.closing(sqlite_db()) as conn:
        assert classify_sqlite(sqlite_error(conn, "INSERT INTO t VALUES ('a', -1)")) == "reject"  # CONSTRAINT
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)
        too_big = sqlite_error(conn, "INSERT INTO t VALUES (?, 1)", (LONG_ID,))
        assert too_big.sqlite_errorname == "SQLITE_TOOBIG"
        assert classify_sqlite(too_big) == "reject"
        assert classify_sqlite(sqlite_error(conn, "INSERT INTO no_such_table VALUES (1)")) == "unavailable"
    with contextlib.closing(sqlite_db()) as holder, contextlib.closing(sqlite_db(timeout=0.05)) as waiter:
        holder.execute("BEGIN IMMEDIATE")
        busy = sqlite_error(waiter, "BEGIN IMMEDIATE")
        assert busy.sqlite_errorname == "SQLITE_BUSY"
        assert classify_sqlite(busy) == "unavailable"
        holder.execute("ROLLBACK")
