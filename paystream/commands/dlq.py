"""`paystream dlq list|replay`: inspect dead letters, and put them back after a fix."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import click

from paystream.core.dlq import DeadLetterRecord, read_dead_letters, replay_dead_letters
from paystream.core.settings import Settings
from schemas.dlq import DLQ_STAGES


def _settings() -> Settings:
    settings = Settings.from_env()
    if not settings.kafka_bootstrap:
        raise click.ClickException("PAYSTREAM_KAFKA_BOOTSTRAP is empty: point it at the broker (`paystream dev` "
                                   "prints it)")
    return settings


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise click.BadParameter("--since needs a time zone, e.g. 2026-11-27T10:00:00+00:00")
    return parsed


async def _collect(settings: Settings, stage: str | None, since: datetime | None, limit: int | None
                   ) -> list[DeadLetterRecord]:
    found: list[DeadLetterRecord] = []
    async for record in read_dead_letters(settings.kafka_bootstrap, settings.topics.dlq, stage=stage, since=since,
                                          embedded=settings.uses_embedded_broker):
        found.append(record)
    found.sort(key=lambda r: r.info.failed_at)
    return found[-limit:] if limit else found


@click.group()
def dlq() -> None:
    """Dead letters on payments.dlq.v1."""


@dlq.command("list")
@click.option("--stage", type=click.Choice(DLQ_STAGES), default=None)
@click.option("--since", default=None, help="only dead letters that failed at or after this ISO time")
@click.option("--limit", type=int, default=50, show_default=True, help="newest N (0 = all)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
def list_(stage: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """Print dead letters readably (never their payloads, which may hold customer data)."""
    settings = _settings()
    records = asyncio.run(_collect(settings, stage, _since(since), limit or None))
    for record in records:
        info = record.info
        row = {
            "failed_at": info.failed_at.isoformat(), "stage": info.stage, "reason": info.reason,
            "original": f"{info.original_topic}[{info.original_partition}]@{info.original_offset}",
            "key": (record.key or b"").decode("utf-8", "replace"), "error": info.exception_class,
            "message": info.exception_message, "bytes": len(record.value or b""),
            "dlq": f"{record.partition}@{record.offset}", "attempts": info.attempts,
            "replay_to": info.target_topic,
        }
        if as_json:
            click.echo(json.dumps(row))
        else:
            click.echo(f"{row['failed_at']}  {info.stage:<9} {row['original']:<40} {row['key']:<40} "
                       f"{info.exception_class}: {info.exception_message[:120]}"
                       + (f" [{info.reason}]" if info.reason else ""))
    click.echo(f"{len(records)} dead letter(s)", err=True)


@dlq.command()
@click.option("--stage", type=click.Choice(DLQ_STAGES), default=None)
@click.option("--since", default=None, help="only dead letters that failed at or after this ISO time")
@click.option("--dry-run", is_flag=True, help="show what would be replayed")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def replay(stage: str | None, since: str | None, dry_run: bool, yes: bool) -> None:
    """Republish dead letters to their original topics (state-stage ones as events to the state-input topic);
    dedup and the state's per-event history keep replays from counting twice."""
    settings = _settings()
    records = asyncio.run(_collect(settings, stage, _since(since), None))
    if not records:
        click.echo("nothing to replay", err=True)
        return
    targets: dict[str, int] = {}
    for record in records:
        targets[record.info.target_topic] = targets.get(record.info.target_topic, 0) + 1
    click.echo(", ".join(f"{count} to {topic}" for topic, count in targets.items()), err=True)
    if dry_run:
        return
    if not yes:
        click.confirm(f"replay {len(records)} dead letter(s)?", abort=True)
    sent = asyncio.run(replay_dead_letters(settings.kafka_bootstrap, records,
                                           embedded=settings.uses_embedded_broker, dlq_topic=settings.topics.dlq))
    click.echo(f"replayed {sent} dead letter(s)", err=True)
