"""What a database error means for the sink: reject this row, retry later, or crash.

Classified by what the server says (PostgreSQL's SQLSTATE, SQLite's primary result
code), never by the driver's exception family: psycopg maps SQLSTATE 54000
(`ProgramLimitExceeded`, e.g. "index row size exceeds maximum" for an over-long id)
to `OperationalError`, the same family as a lost connection, and treating it as
"database unavailable" made the sink retry one bad row for ever.

PostgreSQL (Appendix A, "PostgreSQL Error Codes"):

=========================  ===========  ==================================================
SQLSTATE                   kind         why
=========================  ===========  ==================================================
class 22 data exception    reject       this row's values are invalid (bad text, overflow)
class 23 integrity         reject       this row breaks a constraint
class 54 program limit     reject       this row is too large or too complex to store
class 08 connection        unavailable  the connection failed; reconnect and retry
class 53 resources         unavailable  disk full, out of memory, too many connections
class 57 operator          unavailable  shutdown, crash recovery, cancelled (timeout)
class 58 system            unavailable  I/O error on the server
class 40 rollback          unavailable  deadlock or serialization failure: retry the batch
55P03, 55006               unavailable  lock not available, object in use
25006                      unavailable  read-only transaction (a failover to a standby)
anything else              bug          schema or SQL is wrong; crash, restart, re-read
=========================  ===========  ==================================================

A driver error without a SQLSTATE was raised on the client (no connection, NUL in
text, a value the driver cannot adapt) and falls back to its family.
"""

from __future__ import annotations

import sqlite3
from typing import Literal

import psycopg

__all__ = ["ErrorKind", "classify_postgres", "classify_sqlite"]

ErrorKind = Literal["reject", "unavailable", "bug"]

_PG_REJECT_CLASSES = frozenset({"22", "23", "54"})
_PG_RETRY_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_PG_RETRY_CODES = frozenset({"55P03", "55006", "25006"})

# SQLite primary result codes (https://sqlite.org/rescode.html); extended codes keep them in the low byte.
_SQLITE_REJECT = frozenset({18, 19, 20})  # TOOBIG, CONSTRAINT, MISMATCH
_SQLITE_RETRY = frozenset({5, 6, 7, 8, 9, 10, 13, 14, 15})  # BUSY, LOCKED, NOMEM, READONLY, INTERRUPT, IOERR,
#                                                            FULL, CANTOPEN, PROTOCOL


def classify_postgres(exc: BaseException) -> ErrorKind:
    if isinstance(exc, UnicodeError | OverflowError):
        return "reject"  # the driver could not adapt this row's value
    sqlstate = getattr(exc, "sqlstate", None) if isinstance(exc, psycopg.Error) else None
    if sqlstate:
        if sqlstate[:2] in _PG_REJECT_CLASSES:
            return "reject"
        if sqlstate[:2] in _PG_RETRY_CLASSES or sqlstate in _PG_RETRY_CODES:
            return "unavailable"
        return "bug"
    if isinstance(exc, psycopg.IntegrityError | psycopg.DataError):
        return "reject"
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return "unavailable"  # no SQLSTATE: no connection, closed, or the server vanished mid-statement
    return "bug"


def classify_sqlite(exc: BaseException) -> ErrorKind:
    if isinstance(exc, UnicodeError | OverflowError):
        return "reject"
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.Error) else None
    if code is not None:
        if code & 0xFF in _SQLITE_REJECT:
            return "reject"
        if code & 0xFF in _SQLITE_RETRY:
            return "unavailable"
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError):
        return "reject"
    if isinstance(exc, sqlite3.OperationalError | sqlite3.InternalError):
        return "unavailable"  # e.g. "not connected"; SQLITE_ERROR covers a missing table before migration
    return "bug"
