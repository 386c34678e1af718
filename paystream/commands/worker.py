"""`paystream worker`: one Faust worker (run several for more partitions)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

import click

from paystream.core.broker import fetch_cluster_id
from paystream.core.collector import tune_collector
from paystream.core.observability import configure_logging
from paystream.core.settings import DEFAULT_PARTITIONS, EMBEDDED_PARTITIONS, Settings
from schemas.topics import PartitionCountMismatch, ensure_topics

log = logging.getLogger("paystream.worker")


@click.command()
@click.option("--port", type=int, default=None, help="web port (default PAYSTREAM_WORKER_PORT, 6066)")
@click.option("--worker-id", default=None, help="names this worker's state directory (default: the web port)")
def worker(port: int | None, worker_id: str | None) -> None:
    """Deduplicate, normalize and keep payment state (Faust, RocksDB tables)."""
    import faust

    from streams.app import create_worker, worker_datadir
    from streams.compat import embedded_broker_compat_installed, reset_stale_state

    overrides: dict[str, object] = {}
    if port is not None:
        overrides["worker_port"] = port
    if worker_id is not None:
        overrides["worker_id"] = worker_id
    settings = Settings.from_env(**overrides)
    configure_logging(settings.log_format, settings.log_level, process="worker")
    if not settings.kafka_bootstrap:
        raise click.ClickException(
            "PAYSTREAM_KAFKA_BOOTSTRAP is empty: start `paystream broker` (or run `paystream dev`) and set it"
        )

    async def prepare() -> None:
        try:
            await ensure_topics(settings.kafka_bootstrap, settings.topics,
                                replication_factor=settings.replication_factor, require_partitions=True)
        except PartitionCountMismatch as mismatch:
            raise click.ClickException(
                f"{mismatch}. Set PAYSTREAM_PARTITIONS to the topics' count (unset, it is "
                f"{DEFAULT_PARTITIONS}, or {EMBEDDED_PARTITIONS} with PAYSTREAM_EMBEDDED_BROKER=true)") from None
        reset_stale_state(worker_datadir(settings), await fetch_cluster_id(settings.kafka_bootstrap))

    asyncio.run(prepare())
    # uvloop: the pure-Python event loop was a quarter of the worker's CPU per event
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = create_worker(settings).app
    runner = faust.Worker(app, loglevel=settings.log_level.lower(), override_logging=False, redirect_stdouts=False,
                          console_port=0, quiet=True)
    runner.spinner = None  # Faust's terminal spinner wrote escape codes into every log stream
    startup_finished = runner.on_startup_finished

    async def announce_ready() -> None:
        await startup_finished()
        tune_collector(settings.gc_young_threshold)  # the app, its services and tables are built by now
        log.info("worker ready", extra={"port": settings.worker_port, "partitions": settings.partitions,
                                        "reconciliation": settings.reconciliation,
                                        "processing_guarantee": settings.processing_guarantee,
                                        "embedded_broker": settings.uses_embedded_broker,
                                        "embedded_broker_compat": embedded_broker_compat_installed()})

    runner.on_startup_finished = announce_ready  # type: ignore[method-assign]  # Faust hands it to the app
    exit_if_stop_hangs(runner, settings.worker_stop_timeout_s)
    runner.execute_from_commandline()


def exit_if_stop_hangs(runner: Any, timeout_s: float) -> None:
    """Bound the worker's stop: from its start (mode's public `on_stop` hook), at most `timeout_s`.

    Against an unreachable broker a clean stop waits out every client's timeouts and retries (63 s
    measured on the embedded broker, minutes on Apache Kafka), so a stopped pipeline left workers
    behind. Exiting then is safe: what the worker stored locally is in RocksDB's write-ahead log, and
    records it did not commit are read again on restart and deduplicated, as after a kill -9.
    """
    stopping = runner.on_stop

    async def arm_then_stop() -> None:
        watchdog = threading.Timer(timeout_s, _exit_unclean, args=(timeout_s,))
        watchdog.daemon = True  # a stop that finishes in time ends the process with the timer pending
        watchdog.start()
        await stopping()

    runner.on_stop = arm_then_stop


def _exit_unclean(timeout_s: float) -> None:
    log.error("worker stop took longer than PAYSTREAM_WORKER_STOP_TIMEOUT_S; exiting without a clean stop "
              "(records not committed are read again on restart and deduplicated)",
              extra={"timeout_s": timeout_s})
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)
