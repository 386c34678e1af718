"""`paystream ledger import` as a real subprocess against the test broker, and its row checks."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from paystream.commands.ledger import FIELDS, RowError, parse_entry
from schemas.serde import ledger_serde
from schemas.topics import TopicCatalog
from tests.fixtures.kafka import drain
from tests.streams.reconcile.support import partition_for

PAYSTREAM = str(Path(sys.executable).parent / "paystream")


def run_import(env: dict[str, str], path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PAYSTREAM, "ledger", "import", str(path), *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


async def read_ledger(consumer_factory: Any, topics: TopicCatalog, expected: int) -> list[Any]:
    records = await drain(await consumer_factory(topics.ledger), expected=expected, idle_s=1, timeout_s=30)
    return records


GOOD_CSV = """\
merchant_reference,payment_id,provider,amount_minor,currency,expected_at
order-1,pi_a1,stripe,12500,EUR,2026-11-02T10:15:00+01:00
,PAYA2,paypal,990,USD,2026-11-02T09:00:00Z
order-3,pi_a3,stripe,100000,JPY,2026-11-02T23:59:59.123456+00:00
"""


async def test_good_csv_is_published_keyed_by_payment(stream_env: dict[str, str], tmp_path: Path, topics: TopicCatalog,
                                                      consumer_factory: Any) -> None:
    path = tmp_path / "ledger.csv"
    path.write_text(GOOD_CSV)
    result = run_import(stream_env, path)
    assert result.returncode == 0, result.stderr
    assert "3 ledger entries imported" in result.stdout
    records = await read_ledger(consumer_factory, topics, 3)
    entries = {r.key: (r.partition, ledger_serde().decode(r.value)) for r in records}
    assert set(entries) == {b"stripe:pi_a1", b"paypal:PAYA2", b"stripe:pi_a3"}
    for key, (partition, _) in entries.items():
        assert partition == partition_for(key, topics.partitions)  # co-partitioned with payments.events.v1
    _, first = entries[b"stripe:pi_a1"]
    assert (first.amount_minor, first.currency, first.expected_at, first.merchant_reference) == (
        12500, "EUR", datetime(2026, 11, 2, 9, 15, tzinfo=UTC), "order-1")
    assert entries[b"paypal:PAYA2"][1].merchant_reference is None
    assert entries[b"stripe:pi_a3"][1].expected_at == datetime(2026, 11, 2, 23, 59, 59, 123000, tzinfo=UTC)


async def test_bad_rows_are_reported_with_line_numbers_and_the_rest_imported(
        stream_env: dict[str, str], tmp_path: Path, topics: TopicCatalog, consumer_factory: Any) -> None:
    rows = [
        {"payment_id": "pi_ok1", "provider": "stripe", "amount_minor": 500, "currency": "EUR",
         "expected_at": "2026-11-02T10:00:00Z", "merchant_reference": "r1"},
        {"payment_id": "pi_bad_amount", "provider": "stripe", "amount_minor": 12.5, "currency": "EUR",
         "expected_at": "2026-11-02T10:00:00Z"},
        "not json at all",
        {"payment_id": "pi_naive", "provider": "stripe", "amount_minor": 1, "currency": "EUR",
         "expected_at": "2026-11-02T10:00:00"},
        {"payment_id": "pi_ok2", "provider": "paypal", "amount_minor": 700, "currency": "USD",
         "expected_at": "2026-11-02T11:00:00+02:00"},
        {"payment_id": "pi_cur", "provider": "stripe", "amount_minor": 1, "currency": "eur",
         "expected_at": "2026-11-02T10:00:00Z"},
        {"payment_id": "pi_prov", "provider": "square", "amount_minor": 1, "currency": "EUR",
         "expected_at": "2026-11-02T10:00:00Z"},
        {"payment_id": "pi_ok1", "provider": "stripe", "amount_minor": 500, "currency": "EUR",
         "expected_at": "2026-11-02T10:00:00Z"},
        {"payment_id": "pi_extra", "provider": "stripe", "amount_minor": 1, "currency": "EUR",
         "expected_at": "2026-11-02T10:00:00Z", "note": "x"},
    ]
    lines = [r if isinstance(r, str) else orjson.dumps(r).decode() for r in rows]
    lines.insert(5, "")  # a blank line is skipped, not counted as bad
    path = tmp_path / "ledger.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run_import(stream_env, path, "--progress")
    assert result.returncode == 1
    assert "2 ledger entries imported" in result.stdout and "7 bad rows skipped" in result.stdout
    reported = {int(line.split(":")[1]): line for line in result.stderr.splitlines() if line.startswith(str(path))}
    assert sorted(reported) == [2, 3, 4, 7, 8, 9, 10]
    assert "amount_minor" in reported[2] and "not JSON" in reported[3] and "zone" in reported[4]
    assert "currency" in reported[7] and "provider" in reported[8] and "line 1" in reported[9]
    assert "unknown keys note" in reported[10]
    assert "importing ledger.jsonl" in result.stderr  # the progress bar's label
    records = await read_ledger(consumer_factory, topics, 2)
    assert sorted(r.key for r in records) == [b"paypal:pi_ok2", b"stripe:pi_ok1"]


async def test_a_wrong_header_imports_nothing(stream_env: dict[str, str], tmp_path: Path, topics: TopicCatalog,
                                              consumer_factory: Any) -> None:
    path = tmp_path / "ledger.csv"
    path.write_text("payment_id,provider,amount,currency,expected_at,merchant_reference\n"
                    "pi_1,stripe,100,EUR,2026-11-02T10:00:00Z,\n")
    result = run_import(stream_env, path)
    assert result.returncode == 1
    assert "header must name exactly these columns" in result.stderr
    assert await drain(await consumer_factory(topics.ledger), idle_s=0.5) == []


def test_dry_run_needs_no_broker(tmp_path: Path) -> None:
    path = tmp_path / "ledger.csv"
    path.write_text(GOOD_CSV + "ref,pi_x,stripe,-5,EUR,2026-11-02T10:00:00Z\n")
    env = {"PATH": "/usr/bin:/bin", "PAYSTREAM_KAFKA_BOOTSTRAP": ""}
    result = run_import(env, path, "--dry-run")
    assert result.returncode == 1
    assert "3 ledger entries valid (dry run" in result.stdout
    assert f"{path}:5: amount_minor must be" in result.stderr


@pytest.mark.parametrize(("row", "problem"), [
    ({"amount_minor": "1e3"}, "amount_minor"),
    ({"amount_minor": "0"}, "positive"),
    ({"amount_minor": " 12 "}, None),
    ({"payment_id": " pi_1"}, "spaces"),
    ({"payment_id": ""}, "payment_id is required"),
    ({"expected_at": "yesterday"}, "ISO 8601"),
    ({"expected_at": "2026-11-02T10:00:00-05:00"}, None),
    ({"currency": "EURO"}, "currency"),
])
def test_row_checks(row: dict[str, str], problem: str | None) -> None:
    base = {"payment_id": "pi_1", "provider": "stripe", "amount_minor": "100", "currency": "EUR",
            "expected_at": "2026-11-02T10:00:00Z", "merchant_reference": ""}
    values = {**base, **row}
    assert set(values) == set(FIELDS)
    if problem is None:
        entry = parse_entry(values, text=True)
        assert entry.expected_at.tzinfo is not None and entry.merchant_reference is None
        return
    with pytest.raises(RowError, match=problem):
        parse_entry(values, text=True)


def test_json_amounts_must_be_integers() -> None:
    base = {"payment_id": "pi_1", "provider": "stripe", "currency": "EUR", "expected_at": "2026-11-02T10:00:00Z"}
    assert parse_entry({**base, "amount_minor": 250}, text=False).amount_minor == 250
    for bad in ("250", 2.5, True, None):
        with pytest.raises(RowError, match="whole number"):
            parse_entry({**base, "amount_minor": bad}, text=False)
