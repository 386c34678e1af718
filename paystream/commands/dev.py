"""`paystream dev` (what `make run` starts): broker, ingress, worker and sink in one terminal."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import sys

import click

from paystream.core.settings import Settings
from paystream.dev.banner import banner
from paystream.dev.secrets import DevSecrets
from paystream.dev.supervisor import ChildSpec, Supervisor, http_ready, tcp_ready


def _port_or_free(port: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return port
        except OSError:
            sock.bind(("127.0.0.1", 0))
            free: int = sock.getsockname()[1]
            click.echo(f"port {port} is busy; using {free} instead", err=True)
            return free


def _sqlite_path(settings: Settings) -> str | None:
    url = settings.resolved_sink_url
    return os.path.abspath(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def _available(command: str) -> bool:
    return importlib.util.find_spec(f"paystream.commands.{command}") is not None


async def _run(settings: Settings) -> int:
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    secrets = DevSecrets.load_or_create(data_dir)
    broker_port = _port_or_free(settings.broker_port)
    ingress_port = _port_or_free(settings.ingress_port)
    worker_port = _port_or_free(settings.worker_port)
    sink_port = _port_or_free(settings.sink_metrics_port)
    bootstrap = f"127.0.0.1:{broker_port}"
    env = {
        **settings.to_env(),
        **secrets.env(data_dir),
        "PAYSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        "PAYSTREAM_EMBEDDED_BROKER": "true",
        "PAYSTREAM_DATA_DIR": str(data_dir),
        "PAYSTREAM_ENVIRONMENT": "development",
        "PAYSTREAM_LOG_FORMAT": "console",
        "PAYSTREAM_INGRESS_PORT": str(ingress_port),
        "PAYSTREAM_WORKER_PORT": str(worker_port),
        "PAYSTREAM_SINK_METRICS_PORT": str(sink_port),
        "PYTHONUNBUFFERED": "1",
    }
    cli = [sys.executable, "-m", "paystream"]
    supervisor = Supervisor()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sqlite_path: str | None = None
    ops_url: str | None = None
    try:
        await supervisor.start(ChildSpec("broker", [*cli, "broker", "--port", str(broker_port)],
                                         tcp_ready("127.0.0.1", broker_port), env))
        if _available("sink"):
            migrate = await asyncio.create_subprocess_exec(*cli, "sink", "migrate", env={**env})
            if await migrate.wait() != 0:
                raise RuntimeError("sink migrations failed")
        await supervisor.start(ChildSpec("ingress", [*cli, "ingress"],
                                         http_ready(f"http://127.0.0.1:{ingress_port}/ready"), env))
        if _available("worker"):
            await supervisor.start(ChildSpec("worker", [*cli, "worker"],
                                             http_ready(f"http://127.0.0.1:{worker_port}/ready"), env,
                                             ready_timeout_s=120))
            ops_url = f"http://127.0.0.1:{worker_port}"
        if _available("sink"):
            await supervisor.start(ChildSpec("sink", [*cli, "sink"],
                                             http_ready(f"http://127.0.0.1:{sink_port}/ready"), env))
            sqlite_path = _sqlite_path(settings)
        supervisor.say(banner(ingress_url=f"http://127.0.0.1:{ingress_port}", broker=bootstrap,
                              sqlite_path=sqlite_path, ops_url=ops_url, ops_token=secrets.ops_token,
                              stripe_secret=secrets.stripe_secret))
        waiter = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(supervisor.failed.wait())
        await asyncio.wait({waiter, failed}, return_when=asyncio.FIRST_COMPLETED)
        return 1 if supervisor.failed.is_set() else 0
    except RuntimeError as exc:
        supervisor.say(f"paystream dev: {exc}")
        return 1
    finally:
        supervisor.say("stopping …")
        await supervisor.stop()
        supervisor.say("all processes stopped")


@click.command()
def dev() -> None:
    """Run broker, ingress, worker and sink on embedded defaults; print where to look."""
    settings = Settings.from_env()
    raise SystemExit(asyncio.run(_run(settings)))
