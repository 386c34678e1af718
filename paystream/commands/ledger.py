"""`paystream ledger import FILE`: the merchant's expected payments onto payments.ledger.v1.

FILE is CSV with a header row of exactly the `LedgerEntry` field names (any order),
or JSON Lines with the same keys (`merchant_reference` may be null or left out):

    payment_id,provider,amount_minor,currency,expected_at,merchant_reference
    pi_3Nx…,stripe,12500,EUR,2026-11-01T10:15:00+01:00,order-1001

Every row is checked on its own; bad rows are reported with their line numbers and
the rest is imported (exit status 1 when any row was rejected). Records go out with
acks=all, keyed `<provider>:<payment_id>`, so they land on the partition of that
payment's provider events. Importing the same file again is harmless: a payment's
latest ledger record replaces the earlier one.
"""

from __future__ import annotations

import asyncio
import csv
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click
import orjson

from paystream.core.settings import Settings
from schemas.clock import from_epoch_ms, to_epoch_ms
from schemas.lifecycle import Provider
from schemas.records import LedgerEntry

__all__ = ["FIELDS", "BadRow", "ledger", "parse_entry", "read_rows"]

FIELDS = ("payment_id", "provider", "amount_minor", "currency", "expected_at", "merchant_reference")
REQUIRED = frozenset(FIELDS) - {"merchant_reference"}
PROVIDERS = frozenset(p.value for p in Provider)
PROGRESS_MIN_BYTES = 1 << 20
SEND_CHUNK = 2000
MAX_SHOWN = 200
_CURRENCY = re.compile(r"[A-Z]{3}")
_DIGITS = re.compile(r"[0-9]+")
_LONG_MAX = (1 << 63) - 1


class RowError(ValueError):
    """One row is unusable; the message says why, in words a person fixing the file understands."""


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    message: str


def _amount(value: Any, *, text: bool) -> int:
    if text and isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        amount = int(value.strip())
    elif not text and isinstance(value, int) and not isinstance(value, bool):
        amount = value
    else:
        raise RowError(f"amount_minor must be a whole number of minor units (got {value!r})")
    if not 0 < amount <= _LONG_MAX:
        raise RowError(f"amount_minor must be positive (got {amount})")
    return amount


def _expected_at(value: Any) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise RowError("expected_at is required (ISO 8601 with a zone)")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RowError(f"expected_at is not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise RowError(f"expected_at needs a zone, e.g. Z or +01:00: {value!r}")
    return from_epoch_ms(to_epoch_ms(moment.astimezone(UTC)))  # whole milliseconds, as Avro keeps them


def parse_entry(row: dict[str, Any], *, text: bool) -> LedgerEntry:
    """One ledger entry from a CSV row (`text`: every value a string) or a JSON object."""
    payment_id = row.get("payment_id")
    if not isinstance(payment_id, str) or not payment_id.strip():
        raise RowError("payment_id is required")
    if payment_id != payment_id.strip() or len(payment_id) > 255:
        raise RowError(f"payment_id has surrounding spaces or is too long: {payment_id!r}")
    provider = row.get("provider")
    if provider not in PROVIDERS:
        raise RowError(f"provider must be one of {', '.join(sorted(PROVIDERS))} (got {provider!r})")
    currency = row.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise RowError(f"currency must be an upper-case ISO 4217 code such as EUR (got {currency!r})")
    reference = row.get("merchant_reference")
    if text and reference == "":
        reference = None
    if reference is not None and not isinstance(reference, str):
        raise RowError("merchant_reference must be text")
    return LedgerEntry(payment_id=payment_id, provider=str(provider), currency=currency,
                       amount_minor=_amount(row.get("amount_minor"), text=text),
                       expected_at=_expected_at(row.get("expected_at")), merchant_reference=reference)


class _Lines:
    """Decoded lines of a binary file, counting the bytes read (for the progress bar)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.bytes_read = 0
        self.first = True

    def __iter__(self) -> Iterator[str]:
        for raw in self._handle:
            self.bytes_read += len(raw)
            text = raw.decode("utf-8")
            if self.first:
                text, self.first = text.removeprefix("\ufeff"), False
            yield text


def _csv_rows(lines: _Lines) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        return
    names = [name.strip() for name in header]
    if sorted(names) != sorted(FIELDS):
        raise click.ClickException(f"the header must name exactly these columns: {','.join(FIELDS)} "
                                   f"(got {','.join(names)})")
    last = reader.line_num
    for values in reader:
        line, last = last + 1, reader.line_num
        if not values or values == [""]:
            continue
        if len(values) != len(names):
            yield line, BadRow(line, f"expected {len(names)} columns, found {len(values)}")
            continue
        yield line, dict(zip(names, values, strict=True))


def _jsonl_rows(lines: _Lines) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    for line, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield line, BadRow(line, f"not JSON: {exc}")
            continue
        if not isinstance(value, dict):
            yield line, BadRow(line, "not a JSON object")
            continue
        unknown = sorted(set(value) - set(FIELDS))
        missing = sorted(REQUIRED - set(value))
        if unknown or missing:
            problems = ([f"unknown keys {', '.join(unknown)}"] if unknown else []) + (
                [f"missing keys {', '.join(missing)}"] if missing else [])
            yield line, BadRow(line, "; ".join(problems))
            continue
        yield line, value


def read_rows(lines: _Lines, fmt: str) -> Iterator[LedgerEntry | BadRow]:
    """Every row in file order: an entry, or why it is bad (duplicates of an earlier payment are bad)."""
    seen: dict[str, int] = {}
    text = fmt == "csv"
    rows = _csv_rows(lines) if text else _jsonl_rows(lines)
    for line, row in rows:
        if isinstance(row, BadRow):
            yield row
            continue
        try:
            entry = parse_entry(row, text=text)
        except RowError as exc:
            yield BadRow(line, str(exc))
            continue
        first = seen.setdefault(entry.payment_key, line)
        if first != line:
            yield BadRow(line, f"payment {entry.payment_key} already on line {first}")
            continue
        yield entry


def _format_of(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    with path.open("rb") as handle:
        start = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if start.startswith(b"{") else "csv"


async def _publish(settings: Settings, entries: Iterable[LedgerEntry]) -> int:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from paystream.core.broker import producer_options
    from schemas.serde import ledger_serde
    from schemas.topics import ensure_topics

    try:
        await ensure_topics(settings.kafka_bootstrap, settings.topics, replication_factor=settings.replication_factor)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=15_000,
                                    **producer_options(embedded=settings.uses_embedded_broker, linger_ms=5))
        await producer.start()
    except (KafkaError, OSError) as exc:
        raise click.ClickException(f"cannot reach the broker at {settings.kafka_bootstrap}: {exc}") from exc
    serde, topic, sent = ledger_serde(), settings.topics.ledger, 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for entry in entries:
            pending.append(await producer.send(topic, serde.encode(entry), key=entry.payment_key.encode()))
            if len(pending) >= SEND_CHUNK:
                await asyncio.gather(*pending)
                sent, pending = sent + len(pending), []
        await asyncio.gather(*pending)
        sent += len(pending)
    except KafkaError as exc:
        raise click.ClickException(f"publishing stopped after {sent} acknowledged entries: {exc}") from exc
    finally:
        await producer.stop()
    return sent


@click.group()
def ledger() -> None:
    """The merchant's ledger: what it expects each provider to pay."""


@ledger.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "csv", "jsonl"]), default="auto", show_default=True,
              help="auto: by extension (.csv, .jsonl/.ndjson/.json), else by the first character")
@click.option("--dry-run", is_flag=True, help="check every row, publish nothing")
@click.option("--progress/--no-progress", default=None, help=f"progress bar (default: files over "
                                                             f"{PROGRESS_MIN_BYTES >> 20} MiB)")
def import_(file: Path, fmt: str, dry_run: bool, progress: bool | None) -> None:
    """Validate FILE row by row and publish the good rows to payments.ledger.v1."""
    settings = Settings.from_env()
    if not settings.kafka_bootstrap and not dry_run:
        raise click.ClickException("PAYSTREAM_KAFKA_BOOTSTRAP is empty: start `paystream broker` "
                                   "(or `paystream dev`) and set it")
    fmt = _format_of(file, fmt)
    size = file.stat().st_size
    show = progress if progress is not None else size >= PROGRESS_MIN_BYTES
    bad: list[BadRow] = []
    with file.open("rb") as handle:
        lines = _Lines(handle)
        with click.progressbar(length=size, label=f"importing {file.name}", file=sys.stderr,
                               hidden=not show) as bar:
            def good_entries() -> Iterator[LedgerEntry]:
                done = 0
                for item in read_rows(lines, fmt):
                    bar.update(lines.bytes_read - done)
                    done = lines.bytes_read
                    if isinstance(item, BadRow):
                        bad.append(item)
                    else:
                        yield item

            try:
                entries = good_entries()
                count = sum(1 for _ in entries) if dry_run else asyncio.run(_publish(settings, entries))
            except UnicodeDecodeError as exc:
                raise click.ClickException(f"{file} is not UTF-8 text: {exc}") from exc
    for row in bad[:MAX_SHOWN]:
        click.echo(f"{file}:{row.line}: {row.message}", err=True)
    if len(bad) > MAX_SHOWN:
        click.echo(f"… and {len(bad) - MAX_SHOWN} more bad rows", err=True)
    verb = "valid (dry run, nothing published)" if dry_run else f"imported to {settings.topics.ledger}"
    click.echo(f"{count} ledger entries {verb}; {len(bad)} bad rows skipped")
    if bad:
        sys.exit(1)
