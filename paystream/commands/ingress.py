"""`paystream ingress`: the HTTP ingress under uvicorn."""

from __future__ import annotations

import click

from paystream.core.collector import tune_collector
from paystream.core.observability import configure_logging
from paystream.core.settings import Settings


@click.command()
@click.option("--host", default=None, help="bind address (default PAYSTREAM_INGRESS_HOST)")
@click.option("--port", type=int, default=None, help="port (default PAYSTREAM_INGRESS_PORT, 8080)")
def ingress(host: str | None, port: int | None) -> None:
    """Verify webhooks and publish them to Kafka."""
    from ingress import create_app

    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level, process="ingress")
    if not settings.kafka_bootstrap:
        raise click.ClickException(
            "PAYSTREAM_KAFKA_BOOTSTRAP is empty: start `paystream broker` (or run `paystream dev`) and set it"
        )
    from ingress.server import serve

    app = create_app(settings)
    tune_collector(settings.gc_young_threshold)
    serve(app, host=host or settings.ingress_host,
          port=port if port is not None else settings.ingress_port)
