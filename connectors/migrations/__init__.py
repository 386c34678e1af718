"""Schema migrations for the sink tables (Alembic), driven from code.

`paystream sink migrate` and `paystream dev` call `upgrade(url)`; the sink
itself only checks (`check_schema`) and refuses to run against tables older
than the code. Nothing here runs at import time.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from connectors.exceptions import SchemaNotReadyError
from connectors.targets import backend_of, sqlalchemy_url, sqlite_path

__all__ = ["alembic_config", "check_schema", "current_revision", "downgrade", "head_revision", "upgrade"]

SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    """An Alembic config for this package's migrations against `url` (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["url"] = sqlalchemy_url(url)
    return config


def _prepare(url: str) -> None:
    if backend_of(url) == "sqlite":
        path = sqlite_path(url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (default: the newest)."""
    _prepare(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "no migration revisions found"
    return head


def current_revision(url: str) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def check_schema(url: str) -> str:
    """Raise `SchemaNotReadyError` unless the database is at the head revision; return it."""
    current, head = current_revision(url), head_revision()
    if current != head:
        raise SchemaNotReadyError(
            f"sink database is at revision {current or 'none'}, the code needs {head}: "
            "run `paystream sink migrate` (or `paystream sink --migrate`)"
        )
    return current
