"""Pure pieces: conflict SQL, in-batch dedupe, sink URLs, backoff."""

from __future__ import annotations

import pytest

from connectors.backoff import Backoff
from connectors.exceptions import SinkConfigError
from connectors.tables import PAYMENT_EVENTS, PAYMENTS, RECONCILIATION_WINDOWS, SINK_OFFSETS
from connectors.targets import backend_of, postgres_conninfo, sqlalchemy_url, sqlite_path


def test_conflict_rules() -> None:
    assert PAYMENT_EVENTS.insert_sql("?").endswith("ON CONFLICT (event_key) DO NOTHING")
    payments = PAYMENTS.insert_sql("%s")
    assert "WHERE payments.incarnation <> excluded.incarnation OR payments.version < excluded.version" in payments
    assert "OR (payments.version = excluded.version AND payments.fold_revision < excluded.fold_revision)" in payments
    assert "SET payment_id" not in payments  # keys are never updated
    assert SINK_OFFSETS.insert_select_sql("stage").startswith("INSERT INTO sink_offsets (topic, partition")


def test_dedupe_equals_applying_rows_in_order() -> None:
    assert PAYMENT_EVENTS.dedupe([("e1", 1), ("e1", 2), ("e2", 3)]) == [("e1", 1), ("e2", 3)]
    version, fold_revision = PAYMENTS.columns.index("version"), PAYMENTS.columns.index("fold_revision")
    status = PAYMENTS.columns.index("status")

    def row(pid: str, v: int, mark: str = "first", revision: int = 1) -> tuple[object, ...]:
        values: list[object] = [None] * len(PAYMENTS.columns)
        values[0], values[1], values[version], values[status], values[fold_revision] = pid, "stripe", v, mark, revision
        return tuple(values)

    first_5, second_5 = row("p", 5), row("p", 5, "second")
    kept = PAYMENTS.dedupe([row("p", 2), first_5, row("p", 3), second_5, row("q", 1)])
    assert [(r[0], r[version]) for r in kept] == [("p", 5), ("q", 1)]
    assert kept[0] is first_5  # an equal version never overwrites (the SQL guard is strict)

    # the same events folded again by newer money rules replace the row; older rules never do
    refolded = row("p", 5, "refolded", revision=2)
    kept = PAYMENTS.dedupe([first_5, refolded, row("p", 5, "old rules", revision=0), row("p", 4, revision=3)])
    assert kept == [refolded]

    revision = RECONCILIATION_WINDOWS.columns.index("revision")

    def window(net: int, rev: int) -> tuple[object, ...]:
        values: list[object] = [None] * len(RECONCILIATION_WINDOWS.columns)
        values[0], values[1], values[2], values[8], values[revision] = "s", "USD", 1, net, rev
        return tuple(values)

    windows = RECONCILIATION_WINDOWS.dedupe([window(10, 1), window(20, 2), window(15, 0), window(21, 2)])
    assert [(w[8], w[revision]) for w in windows] == [(21, 2)]  # the highest revision, the last of equals


def test_sink_urls() -> None:
    assert backend_of("sqlite:///./data/p.db") == "sqlite"
    assert sqlite_path("sqlite:////abs/p.db") == "/abs/p.db"
    assert backend_of("postgres://u@h/db") == backend_of("postgresql+psycopg://u@h/db") == "postgresql"
    url = "postgresql://u:p%40ss@h:5/db?options=-csearch_path%3Dx"
    assert sqlalchemy_url(url).drivername == "postgresql+psycopg"
    assert postgres_conninfo(url) == url
    with pytest.raises(SinkConfigError, match="unsupported"):
        backend_of("mysql://u@h/db")
    with pytest.raises(SinkConfigError, match="not a database URL"):
        backend_of("::nonsense::")


def test_backoff_is_capped_exponential_with_jitter() -> None:
    backoff = Backoff(initial_s=0.1, max_s=1.0)
    delays = [backoff.next_delay() for _ in range(10)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(0.5 <= d <= 1.0 for d in delays[4:])
    backoff.reset()
    assert backoff.next_delay() <= 0.1
