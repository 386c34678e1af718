"""The worker's own RocksDB store, as Faust's recovery and the worker's batches use it (real RocksDB files)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust import stores
from faust.types import TP

from streams.partitioned import PartitionedTable
from streams.store import CHANGELOG_OFFSET_KEY, STORE_URL, WorkerStore

CHANGELOG = "paystream-worker-payment-state-changelog"


def changelog_event(partition: int, offset: int, key: bytes, value: bytes | None) -> Any:
    return SimpleNamespace(message=SimpleNamespace(partition=partition, offset=offset, key=key, value=value,
                                                   tp=TP(CHANGELOG, partition)))


@pytest.fixture
def store_factory(tmp_path: Path) -> Callable[..., WorkerStore]:
    """Stores on one data dir, as a restarted worker would open them."""
    made: list[WorkerStore] = []

    def make(name: str = "payment-state") -> WorkerStore:
        app = SimpleNamespace(conf=SimpleNamespace(tabledir=tmp_path / "tables"))
        table = SimpleNamespace(name=name, changelog_topic=SimpleNamespace(get_topic_name=lambda: CHANGELOG))
        store = WorkerStore(STORE_URL, app, table, table_name=name, options={"unused": True})
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def test_faust_builds_the_worker_store_for_the_paystream_url() -> None:
    assert stores.by_url(STORE_URL) is WorkerStore


def test_a_restored_batch_and_its_offset_land_together_and_survive_a_reopen(
        store_factory: Callable[..., WorkerStore]) -> None:
    store = store_factory()
    store.apply_changelog_batch([changelog_event(0, 7, b"a", b"1"), changelog_event(1, 3, b"b", b"2"),
                                 changelog_event(0, 9, b"a", b"3"), changelog_event(0, 8, b"c", b"4"),
                                 changelog_event(0, 10, b"c", None)], None, None)
    assert store.persisted_offset(TP(CHANGELOG, 0)) == 10
    assert store.persisted_offset(TP(CHANGELOG, 1)) == 3
    assert list(store.scan(0)) == [(b"a", b"3")]  # last record per key wins; a tombstone deletes
    store.close()  # a stopped worker
    again = store_factory()
    assert again.persisted_offset(TP(CHANGELOG, 0)) == 10
    assert list(again.scan(0)) == [(b"a", b"3")]
    assert again.db(0).get(CHANGELOG_OFFSET_KEY) is not None  # kept, but never shown as an entry


def test_acknowledged_offsets_only_move_forward_and_not_for_a_revoked_partition(
        store_factory: Callable[..., WorkerStore]) -> None:
    store = store_factory()
    store.write(2, {b"k": b"v"})
    store.advance_offset(2, 40)
    store.advance_offset(2, 12)  # a late callback for an earlier send
    assert store.persisted_offset(TP(CHANGELOG, 2)) == 40
    store.advance_offset(5, 99)  # never opened here (revoked before the ack): a restore re-reads, safely
    assert 5 not in store.partitions()


async def test_a_revoked_partition_is_closed_and_other_tables_topics_are_ignored(
        store_factory: Callable[..., WorkerStore]) -> None:
    store = store_factory()
    store.write(0, {b"k": b"v"})
    store.write(1, {b"k": b"w"})
    await store.on_rebalance(set(), {TP(CHANGELOG, 0), TP("payments.webhooks.raw.v1", 1)}, set())
    assert store.partitions() == [1]
    assert store.db(0).get(b"k") == b"v"  # reopened from disk on its next use


def test_reset_state_forgets_only_this_tables_partitions(store_factory: Callable[..., WorkerStore]) -> None:
    states, dedup = store_factory("payment-state"), store_factory("dedup")
    states.write(0, {b"k": b"v"})
    dedup.write(0, {b"k": b"d"})
    states.reset_state()
    assert states.partitions() == []
    assert list(states.scan(0)) == []
    assert list(dedup.scan(0)) == [(b"k", b"d")]


def test_faust_style_key_access_is_refused_with_a_pointer_to_the_partitioned_api(
        store_factory: Callable[..., WorkerStore]) -> None:
    store = store_factory()
    store.write(3, {b"x": b"1", b"y": b"2"})
    with pytest.raises(TypeError, match="per partition"):
        store[b"x"]
    with pytest.raises(TypeError, match="per partition"):
        store[b"x"] = b"3"
    assert sorted(store) == [b"x", b"y"]
    assert b"y" in store


def test_partitioned_table_refuses_a_table_kept_in_another_store() -> None:
    table = PartitionedTable(SimpleNamespace(), SimpleNamespace(name="dedup", data={}))
    with pytest.raises(TypeError, match="worker's store"):
        table.get(0, b"k")


def test_partitioned_scans_stop_at_the_prefix_and_skip_the_offset_mark(
        store_factory: Callable[..., WorkerStore]) -> None:
    store = store_factory()
    store.apply_changelog_batch([changelog_event(0, 1, b"\x00alias:a", b"1"), changelog_event(0, 2, b"o|1", b"2"),
                                 changelog_event(0, 3, b"o|2", b"3"), changelog_event(0, 4, b"p|1", b"4")],
                                None, None)
    table = PartitionedTable(SimpleNamespace(), SimpleNamespace(name="payment-state", data=store))
    assert list(table.scan_prefix(0, b"o|")) == [(b"o|1", b"2"), (b"o|2", b"3")]
    assert list(table.scan_prefix(0, b"o|", start=b"o|2")) == [(b"o|2", b"3")]
    assert [key for key, _ in table.scan(0)] == [b"\x00alias:a", b"o|1", b"o|2", b"p|1"]
    assert table.partitions() == [0]
