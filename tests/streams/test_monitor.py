"""`ScrapedMonitor`: Faust's metric names and values, with no Prometheus work in the per-record hooks."""

from __future__ import annotations

from types import SimpleNamespace

from faust.sensors.prometheus import FaustMetrics
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.monitor import ScrapedMonitor

RAW, EVENTS = "payments.webhooks.raw.v1", "payments.events.v1"


class Agent:
    """A stream's task owner (weakly referenced by Faust's monitor)."""


class Stream:
    """What the hooks read of a Faust stream: hashable, a label, its task."""

    shortlabel = "Stream: payments"

    def __init__(self) -> None:
        self.task_owner = Agent()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels or None)


def receive(monitor: ScrapedMonitor, stream: Stream, tp: TP, offsets: range) -> None:
    """Each record as a Faust stream reports it: read, handled by the stream, acknowledged."""
    for offset in offsets:
        message = SimpleNamespace(time_in=None)
        monitor.on_message_in(tp, offset, message)
        state = monitor.on_stream_event_in(tp, offset, stream, object())
        monitor.on_stream_event_out(tp, offset, stream, object(), state)
        monitor.on_message_out(tp, offset, message)


def test_records_reach_the_metrics_when_published_not_before() -> None:
    registry = CollectorRegistry()
    monitor = ScrapedMonitor(FaustMetrics.create(registry, "paystream_worker"))
    stream = Stream()
    receive(monitor, stream, TP(RAW, 3), range(10, 13))
    receive(monitor, stream, TP(EVENTS, 1), range(1))
    monitor.track_tp_end_offset(TP(RAW, 3), 20)
    assert value(registry, "paystream_worker_messages_received_total") == 0
    assert value(registry, "paystream_worker_messages_received_per_topics_partition", topic=RAW, partition="3") is None

    monitor.publish()
    assert value(registry, "paystream_worker_messages_received_total") == 4
    assert value(registry, "paystream_worker_messages_received_per_topic_total", topic=RAW) == 3
    assert value(registry, "paystream_worker_messages_received_per_topic_total", topic=EVENTS) == 1
    assert value(registry, "paystream_worker_messages_received_per_topics_partition", topic=RAW, partition="3") == 12
    assert value(registry, "paystream_worker_topic_partition_end_offset", topic=RAW, partition="3") == 20
    assert value(registry, "paystream_worker_total_events_total") == 4
    assert value(registry, "paystream_worker_total_events_per_stream_total", stream="stream.payments.events") == 4
    assert value(registry, "paystream_worker_active_messages") == 0
    assert value(registry, "paystream_worker_total_active_events") == 0
    assert value(registry, "paystream_worker_events_runtime_ms_count") == 4


def test_publishing_again_adds_only_what_came_since() -> None:
    registry = CollectorRegistry()
    monitor = ScrapedMonitor(FaustMetrics.create(registry, "paystream_worker"))
    stream = Stream()
    receive(monitor, stream, TP(RAW, 0), range(5))
    monitor.publish()
    monitor.publish()
    assert value(registry, "paystream_worker_messages_received_total") == 5
    assert value(registry, "paystream_worker_events_runtime_ms_count") == 5

    receive(monitor, stream, TP(RAW, 0), range(5, 7))
    monitor.on_message_in(TP(RAW, 0), 7, SimpleNamespace(time_in=None))  # read, not yet acknowledged
    monitor.publish()
    assert value(registry, "paystream_worker_messages_received_total") == 8
    assert value(registry, "paystream_worker_messages_received_per_topic_total", topic=RAW) == 8
    assert value(registry, "paystream_worker_active_messages") == 1
    assert value(registry, "paystream_worker_total_events_per_stream_total", stream="stream.payments.events") == 7
    assert value(registry, "paystream_worker_events_runtime_ms_count") == 7
