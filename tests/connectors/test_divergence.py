"""The payments guard flags a diverged state instead of silently keeping the larger one (both databases).

A version is the number of events a state folds; two states of one payment are consistent when one's
events include the other's. These cases are the ones the version guard alone gets wrong or hides.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from connectors.base import FlushResult, SinkRecord
from connectors.database import DatabaseSink
from schemas.records import HistoryEntry, PaymentState
from tests.connectors.conftest import Db
from tests.connectors.factories import BASE, Feed, state

SinkFactory = Callable[..., Awaitable[DatabaseSink]]


def folded(payment: int, *events: str) -> PaymentState:
    """A state of `pay_<payment>` folded from these event ids (its version is how many there are)."""
    history = [HistoryEntry(event_key=f"stripe:{e}", event_type="payment_intent.created", kind="payment",
                            occurred_at=BASE + timedelta(seconds=i)) for i, e in enumerate(events)]
    return replace(state(payment, len(events)), history=history)


async def flush(sink: DatabaseSink, records: list[SinkRecord]) -> FlushResult:
    for record in records:
        sink.add(record)
    return await sink.flush()


def row(db: Db, payment: int) -> tuple[int, list[str], list[str] | None]:
    [(version, keys, diverged)] = [r[1:] for r in db.rows("SELECT payment_id, version, event_keys, diverged_events "
                                                          "FROM payments") if r[0] == f"pay_{payment}"]
    return version, json.loads(keys), None if diverged is None else json.loads(diverged)


async def test_older_and_newer_states_of_one_history_are_not_divergence(sink_backend: Db, sink_factory: SinkFactory,
                                                                        feed: Feed) -> None:
    sink = await sink_factory(sink_backend, feed.catalog)
    result = await flush(sink, [feed.state(folded(1, "a", "b", "c")), feed.state(folded(1, "a"))])
    result2 = await flush(sink, [feed.state(folded(1, "a", "b")), feed.state(folded(1, "a", "b", "c", "d"))])
    assert result.diverged == result2.diverged == 0
    assert row(sink_backend, 1) == (4, ["stripe:a", "stripe:b", "stripe:c", "stripe:d"], None)


async def test_same_version_other_events_is_flagged_and_the_stored_row_kept(
        sink_backend: Db, sink_factory: SinkFactory, feed: Feed, caplog: pytest.LogCaptureFixture) -> None:
    sink = await sink_factory(sink_backend, feed.catalog)
    await flush(sink, [feed.state(folded(1, "a", "b", "x"))])
    with caplog.at_level(logging.WARNING, logger="paystream.sink"):
        result = await flush(sink, [feed.state(folded(1, "a", "b", "y"))])  # a stale restore plus a new event
    assert result.diverged == 1
    assert row(sink_backend, 1) == (3, ["stripe:a", "stripe:b", "stripe:x"], ["stripe:y"])
    [record] = [r for r in caplog.records if "diverged" in r.getMessage()]
    assert (record.payment_id, record.stored_version, record.incoming_version) == ("pay_1", 3, 3)  # type: ignore[attr-defined]


async def test_a_lower_version_claiming_events_the_row_lacks_is_flagged(sink_backend: Db, sink_factory: SinkFactory,
                                                                       feed: Feed) -> None:
    sink = await sink_factory(sink_backend, feed.catalog)
    await flush(sink, [feed.state(folded(1, "a", "b", "c"))])
    result = await flush(sink, [feed.state(folded(1, "a", "z"))])
    assert result.diverged == 1
    assert row(sink_backend, 1) == (3, ["stripe:a", "stripe:b", "stripe:c"], ["stripe:z"])


async def test_a_higher_version_that_lost_events_wins_but_lists_them_until_a_state_covers_them(
        sink_backend: Db, sink_factory: SinkFactory, feed: Feed) -> None:
    sink = await sink_factory(sink_backend, feed.catalog)
    await flush(sink, [feed.state(folded(1, "a", "x"))])
    result = await flush(sink, [feed.state(folded(1, "a", "y", "z"))])  # within one batch too:
    result2 = await flush(sink, [feed.state(folded(2, "a", "b")), feed.state(folded(2, "a", "c", "d"))])
    assert result.diverged == result2.diverged == 1
    assert row(sink_backend, 1) == (3, ["stripe:a", "stripe:y", "stripe:z"], ["stripe:x"])
    assert row(sink_backend, 2) == (3, ["stripe:a", "stripe:c", "stripe:d"], ["stripe:b"])
    # `paystream state rebuild` (or the missing event replayed) brings a state with every event: cleared
    await flush(sink, [feed.state(folded(1, "a", "x", "y", "z"))])
    assert row(sink_backend, 1) == (4, ["stripe:a", "stripe:x", "stripe:y", "stripe:z"], None)



def money(db: Db, payment: int) -> tuple[int, int, int, list[str] | None]:
    [found] = [r[1:] for r in db.rows("SELECT payment_id, version, fold_revision, refunded_minor, diverged_events "
                                      "FROM payments") if r[0] == f"pay_{payment}"]
    version, revision, refunded, diverged = found
    return version, revision, refunded, None if diverged is None else json.loads(diverged)


async def test_the_same_events_folded_by_newer_money_rules_replace_the_row_and_older_rules_never_do(
        sink_backend: Db, sink_factory: SinkFactory, feed: Feed) -> None:
    """`paystream state rebuild` after an upgrade of the money rules: same events (same version), a higher
    `fold_revision`. The strict version guard alone would keep the old numbers for good."""
    sink = await sink_factory(sink_backend, feed.catalog)
    old_rules = replace(folded(1, "a", "b"), fold_revision=0, refunded_minor=1000)  # counted one refund twice
    await flush(sink, [feed.state(old_rules)])
    assert money(sink_backend, 1) == (2, 0, 1000, None)

    refolded = replace(old_rules, fold_revision=1, refunded_minor=500)
    result = await flush(sink, [feed.state(refolded)])
    assert result.diverged == 0
    assert money(sink_backend, 1) == (2, 1, 500, None)

    # a worker still on the old rules (a rolling upgrade) re-emits its state: it never wins back the row,
    # alone or beside the refolded state in one batch, whatever the order
    result = await flush(sink, [feed.state(old_rules)])
    result2 = await flush(sink, [feed.state(refolded), feed.state(old_rules)])
    assert result.diverged == result2.diverged == 0
    assert money(sink_backend, 1) == (2, 1, 500, None)
    await flush(sink, [feed.state(replace(old_rules, payment_id="pay_2")),
                       feed.state(replace(refolded, payment_id="pay_2")),
                       feed.state(replace(old_rules, payment_id="pay_2"))])
    assert money(sink_backend, 2) == (2, 1, 500, None)

    # a new event is a higher version: it wins whichever rules folded it (the next rebuild refolds it)
    await flush(sink, [feed.state(replace(folded(1, "a", "b", "c"), fold_revision=0, refunded_minor=700))])
    assert money(sink_backend, 1) == (3, 0, 700, None)
