"""Faust's Prometheus metrics, published when scraped instead of updated per message.

Faust's `PrometheusMonitor` looks up a labelled Prometheus child (`labels()`: a lock and a hash per call)
in its per-message and per-event hooks: four lookups for every record a stream reads. At 500 webhooks/s
those hooks were ~8 % of the worker's main thread (py-spy during bench-e2e, 2026-12-07), the thread the
whole pipeline waits on. `ScrapedMonitor` keeps the same metric names and values: its hot hooks only
update the plain counters of Faust's base `Monitor` (which Faust's own `/stats/` view reads too), and
`publish()` copies those into the Prometheus metrics when `/metrics` is scraped. One difference: the
`events_runtime_ms` histogram gets, per scrape, only the newest runtimes the base monitor keeps (its last
100), a sample rather than every event (no dashboard or alert reads it; the worker's own
`paystream_worker_batch_seconds` covers processing time). The less frequent hooks (commits, rebalances,
sends, web requests) are Faust's, unchanged.
"""

from __future__ import annotations

from typing import Any

from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["ScrapedMonitor", "serve_metrics"]


class ScrapedMonitor(PrometheusMonitor):
    """`PrometheusMonitor` whose per-record hooks touch no Prometheus metric (module docstring)."""

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics, **kwargs)
        self._published: dict[Any, float] = {}
        """Counter totals already added to the Prometheus counters, per counter and label."""
        self._runtimes_published = 0
        """Events done (their runtime kept) at the last publish."""

    def on_message_in(self, tp: TP, offset: int, message: Any) -> None:
        Monitor.on_message_in(self, tp, offset, message)

    def on_stream_event_in(self, tp: TP, offset: int, stream: Any, event: Any) -> dict[str, Any] | None:
        return Monitor.on_stream_event_in(self, tp, offset, stream, event)

    def on_stream_event_out(self, tp: TP, offset: int, stream: Any, event: Any,
                            state: dict[str, Any] | None = None) -> None:
        Monitor.on_stream_event_out(self, tp, offset, stream, event, state)

    def on_message_out(self, tp: TP, offset: int, message: Any) -> None:
        Monitor.on_message_out(self, tp, offset, message)

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        Monitor.track_tp_end_offset(self, tp, offset)

    def publish(self) -> None:
        """Bring the Prometheus metrics up to the monitor's counters (before each scrape)."""
        metrics = self._metrics
        self._add(metrics.messages_received, self.messages_received_total)
        metrics.active_messages.set(self.messages_active)
        for topic, count in list(self.messages_received_by_topic.items()):
            self._add(metrics.messages_received_per_topics.labels(topic=topic), count)
        for tp, offset in list(self.tp_read_offsets.items()):
            metrics.messages_received_per_topics_partition.labels(topic=tp.topic, partition=tp.partition).set(offset)
        self._add(metrics.total_events, self.events_total)
        metrics.total_active_events.set(self.events_active)
        for stream, key in list(self.stream_lookup.items()):
            label = f"stream.{self._stream_label(stream)}.events"
            self._add(metrics.total_events_per_stream.labels(stream=label), self.events_by_stream[key])
        for tp, offset in list(self.tp_end_offsets.items()):
            metrics.topic_partition_end_offset.labels(topic=tp.topic, partition=tp.partition).set(offset)
        new_runtimes = self._new_runtimes()
        if new_runtimes:
            for runtime in list(self.events_runtime)[-new_runtimes:]:
                metrics.events_runtime_latency.observe(self.secs_to_ms(runtime))

    def _add(self, counter: Any, total: float) -> None:
        """A Prometheus counter only goes up: add what `total` grew by since the last publish."""
        grown = total - self._published.get(counter, 0)
        if grown > 0:
            counter.inc(grown)
            self._published[counter] = total

    def _new_runtimes(self) -> int:
        """How many of the kept event runtimes arrived since the last publish (at most all that are kept)."""
        done = self.events_total - self.events_active
        new, self._runtimes_published = done - self._runtimes_published, done
        return max(0, min(new, len(self.events_runtime)))


def serve_metrics(app: Any, registry: CollectorRegistry, pattern: str = "/metrics") -> ScrapedMonitor:
    """Install `ScrapedMonitor` as the app's monitor and serve `registry` at `pattern` (as Faust's
    `setup_prometheus_sensors` does, with the same metric names)."""
    monitor = ScrapedMonitor(FaustMetrics.create(registry, app.conf.name.replace("-", "_").replace(".", "_")))
    app.monitor = monitor

    @app.page(pattern)
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            monitor.publish()
            return self.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return monitor
