"""Alembic migrations, applied from code and by `paystream sink migrate`; never at import."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.exceptions import SchemaNotReadyError
from connectors.migrations import check_schema, current_revision, downgrade, head_revision, upgrade
from connectors.runner import SinkRunner
from paystream.core.settings import Settings
from tests.connectors.conftest import PAYSTREAM_BIN, Db, sink_env

SINK_TABLES = {"payment_events", "payments", "reconciliation_windows", "dead_letters", "sink_offsets"}


def tables(db: Db) -> set[str]:
    if db.kind == "sqlite":
        return {r[0] for r in db.rows("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    return {r[0] for r in db.rows("SELECT table_name FROM information_schema.tables "
                                  "WHERE table_schema = current_schema()")}


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_upgrade_downgrade_round_trip(kind: str, db_factory: Callable[..., Db]) -> None:
    db = db_factory(kind, migrate=False)
    with pytest.raises(SchemaNotReadyError, match="paystream sink migrate"):
        check_schema(db.url)

    upgrade(db.url)
    upgrade(db.url)  # idempotent
    assert check_schema(db.url) == head_revision() == current_revision(db.url)
    assert tables(db) >= SINK_TABLES | {"sink_clock", "alembic_version"}
    [(now_ms,)] = db.rows("SELECT now_ms FROM sink_clock")
    assert isinstance(now_ms, int) and now_ms > 1_700_000_000_000

    downgrade(db.url, "base")
    assert current_revision(db.url) is None
    assert not tables(db) & (SINK_TABLES | {"sink_clock"})


def test_importing_the_connectors_creates_nothing(tmp_path: Path) -> None:
    code = "import connectors, connectors.runner, connectors.migrations, connectors.sqlite, connectors.postgres"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=60)
    assert list(tmp_path.iterdir()) == []


def test_cli_migrate_then_refuse_to_run_without_a_broker(tmp_path: Path) -> None:
    settings = Settings(kafka_bootstrap="", data_dir=tmp_path / "data")
    migrate = subprocess.run([str(PAYSTREAM_BIN), "sink", "migrate"], env=sink_env(settings), capture_output=True,
                             timeout=60, check=False)
    assert migrate.returncode == 0, migrate.stderr.decode()
    assert (tmp_path / "data" / "paystream.db").exists()  # the default URL: sqlite under DATA_DIR
    assert check_schema(settings.resolved_sink_url) == head_revision()

    run = subprocess.run([str(PAYSTREAM_BIN), "sink"], env=sink_env(settings), capture_output=True, timeout=60,
                         check=False)
    assert run.returncode != 0
    message = run.stderr.decode()
    assert "PAYSTREAM_KAFKA_BOOTSTRAP" in message and "paystream broker" in message and "paystream dev" in message


async def test_sink_refuses_an_unmigrated_database(kafka: Any, db_factory: Callable[..., Db]) -> None:
    db = db_factory("sqlite", migrate=False)
    runner = SinkRunner(Settings(kafka_bootstrap=kafka.bootstrap, sink_url=db.url, sink_metrics_port=0))
    with pytest.raises(SchemaNotReadyError):
        await runner.run()
