"""Sink URLs: which target a `PAYSTREAM_SINK_URL` names, and how each driver wants it.

`sqlite:///relative/path.db`, `sqlite:////absolute/path.db` and
`postgresql://user@host:port/db?options=…` (also `postgres://`, `postgresql+psycopg://`).
SQLAlchemy/Alembic get the psycopg-3 dialect; the sinks get plain driver arguments.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.engine import URL, make_url

from connectors.base import DeadLetterFn
from connectors.database import DatabaseSink
from connectors.exceptions import SinkConfigError
from schemas.serde import SchemaRegistry
from schemas.topics import TopicCatalog

__all__ = ["Backend", "backend_of", "create_sink", "postgres_conninfo", "sqlalchemy_url", "sqlite_path"]

Backend = Literal["sqlite", "postgresql"]


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError/ValueError variants
        raise SinkConfigError(f"not a database URL: {url!r} ({exc})") from exc


def backend_of(url: str) -> Backend:
    name = _parse(url).get_backend_name()
    if name == "sqlite":
        return "sqlite"
    if name in ("postgresql", "postgres"):
        return "postgresql"
    raise SinkConfigError(f"unsupported sink URL scheme {name!r}: use sqlite:///… or postgresql://…")


def sqlalchemy_url(url: str) -> URL:
    """The URL for SQLAlchemy/Alembic, with the psycopg-3 driver for PostgreSQL."""
    parsed = _parse(url)
    if backend_of(url) == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    return parsed.set(drivername="sqlite")


def sqlite_path(url: str) -> str:
    return _parse(url).database or ":memory:"


def postgres_conninfo(url: str) -> str:
    """A libpq URI (query parameters such as `options=-csearch_path=…` are kept)."""
    return _parse(url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_sink(
    url: str,
    catalog: TopicCatalog,
    *,
    registry: SchemaRegistry | None = None,
    dead_letter: DeadLetterFn | None = None,
) -> DatabaseSink:
    """The sink for a URL (not started)."""
    if backend_of(url) == "sqlite":
        from connectors.sqlite import SqliteSink

        return SqliteSink(sqlite_path(url), catalog, registry=registry, dead_letter=dead_letter)
    from connectors.postgres import PostgresSink

    return PostgresSink(postgres_conninfo(url), catalog, registry=registry, dead_letter=dead_letter)
