"""`paystream sink`: land the output topics in SQL tables; `paystream sink migrate`: create/upgrade them."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import click

from paystream.core.collector import tune_collector
from paystream.core.observability import configure_logging
from paystream.core.settings import Settings

__all__ = ["sink"]


def _settings(*, quiet_alembic: bool) -> Settings:
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level, process="sink")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if quiet_alembic:  # the schema check on start needs no narration
        logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


async def _serve(settings: Settings, *, migrate: bool) -> None:
    from connectors.runner import SWITCH_INTERVAL_S, run_sink

    sys.setswitchinterval(SWITCH_INTERVAL_S)  # a process-wide knob, so the process entry point sets it
    tune_collector(settings.gc_young_threshold)  # likewise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # graceful: flush and commit the batch in hand, then exit
    try:
        await run_sink(settings, stop=stop, migrate=migrate)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@click.group(invoke_without_command=True)
@click.option("--migrate/--no-migrate", default=False, show_default=True,
              help="apply database migrations before starting")
@click.pass_context
def sink(ctx: click.Context, migrate: bool) -> None:
    """Consume payments.{events,state,reconciliation,dlq}.v1 into SQL tables (PAYSTREAM_SINK_URL)."""
    if ctx.invoked_subcommand is not None:
        return
    from connectors.exceptions import SinkError

    settings = _settings(quiet_alembic=not migrate)
    try:  # an empty PAYSTREAM_KAFKA_BOOTSTRAP is refused here too, with what to do instead
        asyncio.run(_serve(settings, migrate=migrate))
    except SinkError as exc:
        raise click.ClickException(str(exc)) from exc


@sink.command()
@click.option("--revision", default="head", show_default=True, help="target revision")
def migrate(revision: str) -> None:
    """Create or upgrade the sink tables in PAYSTREAM_SINK_URL."""
    from connectors.migrations import current_revision, upgrade

    settings = _settings(quiet_alembic=False)
    url = settings.resolved_sink_url
    upgrade(url, revision)
    click.echo(f"sink database at revision {current_revision(url)}")
