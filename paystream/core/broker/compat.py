"""Client settings and fixes for the embedded broker's measured quirks.

DESIGN.md lists seven; this module handles the client-side ones:

1. aiokafka cannot use idempotence/transactions on Tansu  -> `producer_options`
   never enables them there (effectively-once comes from keys instead).
2. ListOffsets("latest") answers the base offset of the last batch + 1, not the
   log end, for multi-record batches -> `CompatConsumer.end_offsets` asks a Fetch
   for the high watermark, through the consumer's own client.
3. librdkafka consumers stall on topics written by aiokafka -> paystream only
   ever consumes with aiokafka (a test scans the code base for confluent_kafka
   consumers; the ingress's librdkafka producer is not affected, see ingress/rdkafka.py).
5. Every group join waits about half the session timeout -> a 2 s session (and short
   rebalance timeout) in `consumer_group_options` / `faust_broker_options`.
8. (found here, not in DESIGN.md) a Fetch waits out its whole max_wait even when
   records arrive meanwhile: no long-poll wake-up, so every hop costs up to
   fetch_max_wait_ms (aiokafka's default 500, Faust's hard-coded 1500). Measured
   on one topic: p50 132 ms at 500, 33 ms at 100, 7 ms at 20 -> a short
   `fetch_max_wait_ms` in `consumer_group_options` / `consumer_fetch_options`
   (sink, window feed) and `worker_fetch_max_wait_ms` (the Faust worker, `streams/fetch_wait.py`).
9. (found here) a Fetch lists every batch stored in the partition, so every produce request costs
   every later fetch of that partition, and a long-running embedded broker slows down as its
   history grows (bench/reports/embedded_fetch.md) -> the ingress lingers longer there, so
   concurrent webhooks share a batch: `publish_linger_ms`; and its topics have 2 partitions unless
   PAYSTREAM_PARTITIONS says otherwise (`EMBEDDED_PARTITIONS` in paystream/core/settings.py).

Quirks 4 (memory only) and 6 (auto-created topics) are handled in
`incarnation.py` and `schemas.topics.ensure_topics`; quirk 7 in `streams/`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.protocol.fetch import FetchRequest

__all__ = [
    "CompatConsumer",
    "consumer_fetch_options",
    "consumer_group_options",
    "faust_broker_options",
    "fetch_high_watermarks",
    "producer_options",
    "publish_linger_ms",
    "worker_fetch_max_wait_ms",
]

log = logging.getLogger("paystream.broker.compat")

# Quirk 5: Tansu answers a JoinGroup only once half the group's session timeout has passed (it re-checks every
# second), and holds a SyncGroup without an assignment up to 0.8 of it. Tansu sets no minimum session (Kafka's is
# 6 s), so 2 s: every join then takes ~1 s instead of 3, and a killed member is noticed after 2 s instead of 6,
# which is most of a restart or takeover on this broker. Heartbeats four times per session.
EMBEDDED_SESSION_TIMEOUT_MS = 2_000
EMBEDDED_REBALANCE_TIMEOUT_MS = 4_000
EMBEDDED_HEARTBEAT_MS = 500
# Apache Kafka: how long a dead member's partitions wait before the group hands them on
# (PAYSTREAM_GROUP_SESSION_TIMEOUT_S); heartbeats at most every 3 s and at least three per session.
KAFKA_SESSION_TIMEOUT_MS = 30_000
KAFKA_REBALANCE_TIMEOUT_MS = 60_000
_FETCH_MAX_WAIT_MS = 20
# Quirk 8: no long-poll wake-up. A Fetch also costs the broker time in proportion to the partition's
# length, so shorter waits cost more broker CPU as the log grows: bench-e2e (60 s at 500 req/s)
# measured p99 601 ms at 25, 379 ms at 50, 332 ms at 100 for every consumer incl. the worker (2.4 s with
# the defaults; 934 ms with the sink and feed only, see streams/compat.py).
EMBEDDED_FETCH_MAX_WAIT_MS = 100
# Quirk 9: bench/reports/e2e.md (2026-12-06 04:06, five 60 s runs at 500 req/s): 7.3 webhooks per raw-topic batch
# at 100 ms on the embedded broker (21k batches), 1.0 at 1 ms on Apache Kafka (144k); the embedded broker's CPU in
# run 5 was 51 s (176 s in the 2026-12-05 series at 1 ms, e2e.md as of 6df0458) and its worst p99 937 ms (2,848).
# A 200 waits up to this long; providers allow seconds.
EMBEDDED_PUBLISH_LINGER_MS = 100
KAFKA_PUBLISH_LINGER_MS = 1
# Not a quirk: aiokafka leaves a partition whose fetched records are still buffered out of its next Fetch and
# sends one Fetch per broker at a time. When every raw partition has records buffered, the worker's next Fetch
# asks only for (empty) state-input partitions and Apache Kafka rightly holds it for the whole max wait; Faust
# hard-codes 1,500 ms there, so end to end sat ~1.5 s behind for whole runs (the Apache-Kafka-only bench-e2e
# series of 2026-12-06 02:49, quoted in the README: p50 1,328-1,508 ms in 3 of 5 runs; none in the series since).
# A short wait bounds that stall; an idle worker then sends 50 Fetches/s.
KAFKA_WORKER_FETCH_MAX_WAIT_MS = 20


def producer_options(*, embedded: bool, linger_ms: int = 0) -> dict[str, Any]:
    """aiokafka producer keyword arguments: acks=all always; idempotence only on real Kafka."""
    return {
        "acks": "all",
        "enable_idempotence": not embedded,
        "linger_ms": linger_ms,
    }


def publish_linger_ms(*, embedded: bool, configured: int | None = None) -> int:
    """The ingress producer's linger: `PAYSTREAM_PUBLISH_LINGER_MS` when set, else longer on the embedded
    broker (quirk 9) than on Apache Kafka, whose fetch finds an offset through its index."""
    if configured is not None:
        return configured
    return EMBEDDED_PUBLISH_LINGER_MS if embedded else KAFKA_PUBLISH_LINGER_MS


def worker_fetch_max_wait_ms(*, embedded: bool) -> int:
    """The Faust worker consumer's fetch wait (`streams/fetch_wait.py`): short on both brokers, for their own
    reasons (quirk 8 on the embedded broker; a Fetch for only empty partitions on Apache Kafka)."""
    return EMBEDDED_FETCH_MAX_WAIT_MS if embedded else KAFKA_WORKER_FETCH_MAX_WAIT_MS


def consumer_fetch_options(*, embedded: bool) -> dict[str, Any]:
    """aiokafka consumer fetch settings: a short max wait on the embedded broker (quirk 8)."""
    return {"fetch_max_wait_ms": EMBEDDED_FETCH_MAX_WAIT_MS if embedded else 500}


def consumer_group_options(*, embedded: bool, session_timeout_ms: int = KAFKA_SESSION_TIMEOUT_MS) -> dict[str, Any]:
    """aiokafka consumer-group timeouts; short fixed ones on the embedded broker (quirks 5 and 8), where
    `session_timeout_ms` is ignored."""
    if embedded:
        return {
            "session_timeout_ms": EMBEDDED_SESSION_TIMEOUT_MS,
            "rebalance_timeout_ms": EMBEDDED_REBALANCE_TIMEOUT_MS,
            "heartbeat_interval_ms": EMBEDDED_HEARTBEAT_MS,
            **consumer_fetch_options(embedded=True),
        }
    return {"session_timeout_ms": session_timeout_ms, "rebalance_timeout_ms": KAFKA_REBALANCE_TIMEOUT_MS,
            "heartbeat_interval_ms": min(3_000, session_timeout_ms // 3), **consumer_fetch_options(embedded=False)}


def faust_broker_options(*, embedded: bool, processing_guarantee: str = "at_least_once",
                         session_timeout_ms: int = KAFKA_SESSION_TIMEOUT_MS) -> dict[str, Any]:
    """The same timeouts in Faust's setting names, plus the processing guarantee: never transactions on the
    embedded broker (quirk 1), exactly_once on Apache Kafka when asked for."""
    if embedded and processing_guarantee != "at_least_once":
        raise ValueError(f"processing_guarantee={processing_guarantee!r} needs Apache Kafka: the embedded broker "
                         "has no transactions (quirk 1)")
    group = consumer_group_options(embedded=embedded, session_timeout_ms=session_timeout_ms)
    return {
        "processing_guarantee": processing_guarantee,
        "broker_session_timeout": group["session_timeout_ms"] / 1000,
        "broker_rebalance_timeout": group["rebalance_timeout_ms"] / 1000,
        "broker_heartbeat_interval": group["heartbeat_interval_ms"] / 1000,
        "producer_acks": -1,
    }


async def fetch_high_watermarks(
    consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition], lower_bounds: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """The log end of each partition, read from Fetch responses (quirk 2).

    Fetches one tiny slice per partition just below `lower_bounds[tp]` (a valid
    position at or below the end) and returns the high watermark each response carries.
    Uses the consumer's existing client, so it works inside Faust's consumer thread.
    """
    client = consumer._client
    by_node: dict[int, dict[str, list[tuple[int, int, int]]]] = defaultdict(lambda: defaultdict(list))
    result = dict(lower_bounds)
    for tp in partitions:
        node = client.cluster.leader_for_partition(tp)
        if node is None or node < 0:
            continue
        # ListOffsets said "last batch base + 1": fetching at that base returns
        # at least one record at once, and every Fetch response carries the HW.
        by_node[node][tp.topic].append((tp.partition, max(lower_bounds.get(tp, 0) - 1, 0), 1))
    for node, topics in by_node.items():
        # Tansu answers nothing at all when min_bytes is 0; with min_bytes=1 an
        # empty partition costs one max_wait (20 ms) and still reports its HW.
        request = FetchRequest(_FETCH_MAX_WAIT_MS, 1, 1, 0, [(topic, parts) for topic, parts in topics.items()])
        response = await client.send(node, request)
        for topic, parts in response.topics:
            for part in parts:
                partition, error_code, high_watermark = part[0], part[1], part[2]
                tp = TopicPartition(topic, partition)
                if error_code == 0 and high_watermark >= 0:
                    result[tp] = max(result.get(tp, 0), high_watermark)
                else:
                    log.warning("fetch for high watermark failed; using ListOffsets",
                                extra={"topic": topic, "partition": partition, "error_code": error_code})
    return result


class CompatConsumer(AIOKafkaConsumer):  # type: ignore[misc]
    """An AIOKafkaConsumer whose `end_offsets` is right on the embedded broker.

    `embedded=False` makes it a plain AIOKafkaConsumer: Apache Kafka's ListOffsets is right, and
    under `read_committed` the end that matters is the last stable offset, not the high watermark.
    The default stays True for callers that do not say (they were written for the embedded broker).
    """

    def __init__(self, *topics: str, embedded: bool = True, **options: Any) -> None:
        super().__init__(*topics, **options)
        self.embedded = embedded

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        partitions = list(partitions)
        listed: dict[TopicPartition, int] = await super().end_offsets(partitions)
        if not self.embedded:
            return listed
        return await fetch_high_watermarks(self, partitions, listed)
