"""`paystream broker`: only the embedded broker, with every catalog topic created."""

from __future__ import annotations

import asyncio
import signal

import click

from paystream.core.broker import EmbeddedBroker
from paystream.core.observability import configure_logging
from paystream.core.settings import Settings
from schemas.topics import ensure_topics


async def _serve(port: int, settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with EmbeddedBroker(port=port) as broker:
        await ensure_topics(broker.bootstrap, settings.topics)
        click.echo(f"embedded broker listening on {broker.bootstrap} (cluster id {broker.cluster_id})", err=True)
        click.echo(f"export PAYSTREAM_KAFKA_BOOTSTRAP={broker.bootstrap} PAYSTREAM_EMBEDDED_BROKER=true", err=True)
        waiter = asyncio.create_task(stop.wait())
        exited = asyncio.create_task(asyncio.to_thread(broker.wait))
        done, _ = await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
        if exited in done:
            raise click.ClickException(f"the broker exited on its own (code {exited.result()})")
        waiter.cancel()
    click.echo("embedded broker stopped", err=True)


@click.command()
@click.option("--port", type=int, default=None, help="listen port (default PAYSTREAM_BROKER_PORT, 9092)")
def broker(port: int | None) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, memory only) until Ctrl-C."""
    settings = Settings.from_env(embedded_broker=True)  # its topics' partitions: what the export line below gives
    configure_logging(settings.log_format, settings.log_level, process="broker")
    asyncio.run(_serve(port if port is not None else settings.broker_port, settings))
