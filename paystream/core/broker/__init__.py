"""The embedded broker and the client-side handling of its quirks (DESIGN.md)."""

from paystream.core.broker.compat import (
    CompatConsumer,
    consumer_fetch_options,
    consumer_group_options,
    faust_broker_options,
    fetch_high_watermarks,
    producer_options,
    publish_linger_ms,
    worker_fetch_max_wait_ms,
)
from paystream.core.broker.incarnation import IncarnationMarker, fetch_cluster_id
from paystream.core.broker.process import BrokerStartError, EmbeddedBroker, free_port, resolve_binary

__all__ = [
    "BrokerStartError",
    "CompatConsumer",
    "EmbeddedBroker",
    "IncarnationMarker",
    "consumer_fetch_options",
    "consumer_group_options",
    "faust_broker_options",
    "fetch_cluster_id",
    "fetch_high_watermarks",
    "free_port",
    "producer_options",
    "publish_linger_ms",
    "resolve_binary",
    "worker_fetch_max_wait_ms",
]
