"""Sink metrics (Prometheus) and the /metrics, /health, /ready endpoints.

Each `SinkMetrics` has its own registry, so several sinks (tests, benchmarks)
can live in one process. `/health` answers while the process runs; `/ready`
answers 200 only while the database takes writes and no partition waits for
its stored offset.
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["MetricsServer", "SinkMetrics"]

log = logging.getLogger("paystream.sink.metrics")

_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_END_TO_END_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class SinkMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.rows_written = Counter("paystream_sink_rows_written", "Rows inserted or updated, by table",
                                    ["table"], registry=r)
        self.records = Counter("paystream_sink_records", "Records consumed and committed", registry=r)
        self.diverged_states = Counter(
            "paystream_sink_diverged_states",
            "Payment states whose events neither include nor are included in the stored row's (alert on any); "
            "the row lists what it lacks in payments.diverged_events", registry=r)
        self.batch_seconds = Histogram("paystream_sink_batch_seconds", "Time to write and commit one batch",
                                       buckets=_BATCH_BUCKETS, registry=r)
        self.batch_records = Histogram("paystream_sink_batch_records", "Records per committed batch",
                                       buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 50000), registry=r)
        self.lag = Gauge("paystream_sink_consumer_lag", "High watermark minus committed offset, by topic",
                         ["topic"], registry=r)
        self.paused = Gauge("paystream_sink_paused", "1 while consumption is paused for backpressure", registry=r)
        self.paused_seconds = Counter("paystream_sink_paused_seconds", "Time spent paused for backpressure",
                                      registry=r)
        self.db_errors = Counter("paystream_sink_db_errors", "Database errors, by kind (unavailable|rejected)",
                                 ["kind"], registry=r)
        self.dead_letters = Counter("paystream_sink_dead_letters", "Records sent to the dead-letter topic",
                                    ["topic"], registry=r)
        self.incarnation_resets = Counter("paystream_sink_incarnation_resets",
                                          "Stored offsets reset because the broker incarnation changed", registry=r)
        self.end_to_end = Histogram("paystream_sink_end_to_end_seconds",
                                    "Ingress receipt of a webhook -> its payment_events row committed",
                                    buckets=_END_TO_END_BUCKETS, registry=r)
        self._ready_gauge = Gauge("paystream_sink_ready", "1 when the sink is ready", registry=r)
        self.ready = False

    def set_ready(self, ready: bool) -> None:
        self.ready = ready
        self._ready_gauge.set(1 if ready else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """A tiny aiohttp server for the three endpoints; `port=0` picks a free port."""

    def __init__(self, metrics: SinkMetrics, *, host: str = "0.0.0.0", port: int = 9108) -> None:  # noqa: S104
        self.metrics = metrics
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _ready(self, request: web.Request) -> web.Response:
        if self.metrics.ready:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        log.info("sink metrics listening", extra={"host": self.host, "port": self.port})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
