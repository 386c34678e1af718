"""The topic catalog: every topic paystream reads or writes, in one place.

Names, keys, value records and partition counts come from here and nowhere
else; `ensure_topics` creates all of them up front, because a broker that
auto-creates topics on first write would give them its own default partition
count (and the embedded broker does exactly that).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field
from functools import lru_cache

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

__all__ = ["PartitionCountMismatch", "TopicCatalog", "TopicSpec", "ensure_topics", "partition_for"]

log = logging.getLogger("paystream.topics")


@lru_cache(maxsize=65536)
def partition_for(key: bytes, partitions: int) -> int:
    """The producer's default partition for `key` (Java-compatible murmur2), cached: payment and series
    keys recur. Every co-partitioning decision (stages, placements, ledger import) goes through this."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`) as an unsigned 32-bit int.

    Reads the key a 32-bit little-endian word at a time (`struct`) instead of a byte at a time:
    the worker hashes two or three new keys per event, and the byte-wise version was ~3 % of its main thread."""
    length = len(data)
    h = 0x9747B28C ^ length
    whole = length & ~3
    for (word,) in struct.iter_unpack("<I", data[:whole]):
        k = (word * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length & 3
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h = ((h ^ data[whole]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One logical topic. `name` is the unprefixed name from DESIGN.md."""

    name: str
    key: str
    value: str
    compacted: bool = False
    config: dict[str, str] = field(default_factory=dict)


RAW = TopicSpec("payments.webhooks.raw.v1", "<provider>:<provider_event_id>", "WebhookEnvelope")
EVENTS = TopicSpec("payments.events.v1", "<provider>:<payment_id>", "PaymentEvent")
STATE = TopicSpec("payments.state.v1", "<provider>:<payment_id>", "PaymentState", compacted=True)
RECONCILIATION = TopicSpec(
    "payments.reconciliation.v1", "<provider>:<currency>:<window_start_iso>", "ReconciliationWindow", compacted=True
)
LEDGER = TopicSpec("payments.ledger.v1", "<provider>:<payment_id>", "LedgerEntry")
DLQ = TopicSpec("payments.dlq.v1", "original key", "original bytes")
# internal to the workers: events whose payment partition another worker owns (see streams/pipeline.py)
STATE_INPUT = TopicSpec("payments.state-input.v1", "<provider>:<payment_id>", "PaymentEvent")

ALL_SPECS: tuple[TopicSpec, ...] = (RAW, EVENTS, STATE, RECONCILIATION, LEDGER, DLQ, STATE_INPUT)


@dataclass(frozen=True, slots=True)
class TopicCatalog:
    """Full topic names for one deployment (prefix) and its partition count."""

    prefix: str = ""
    partitions: int = 8

    def name(self, spec: TopicSpec) -> str:
        return f"{self.prefix}{spec.name}"

    @property
    def raw(self) -> str:
        return self.name(RAW)

    @property
    def events(self) -> str:
        return self.name(EVENTS)

    @property
    def state(self) -> str:
        return self.name(STATE)

    @property
    def reconciliation(self) -> str:
        return self.name(RECONCILIATION)

    @property
    def ledger(self) -> str:
        return self.name(LEDGER)

    @property
    def dlq(self) -> str:
        return self.name(DLQ)

    @property
    def state_input(self) -> str:
        return self.name(STATE_INPUT)

    def specs(self) -> tuple[TopicSpec, ...]:
        return ALL_SPECS

    def new_topics(self, replication_factor: int = 1) -> list[NewTopic]:
        topics = []
        for spec in ALL_SPECS:
            config = dict(spec.config)
            if spec.compacted:
                config.setdefault("cleanup.policy", "compact")
            topics.append(NewTopic(self.name(spec), self.partitions, replication_factor, topic_configs=config))
        return topics


class PartitionCountMismatch(RuntimeError):
    """Existing topics have another partition count than the catalog's."""

    def __init__(self, configured: int, found: dict[str, int]) -> None:
        listed = ", ".join(f"{name} has {count}" for name, count in sorted(found.items()))
        super().__init__(f"topics have another partition count than the configured {configured}: {listed}")


async def ensure_topics(
    bootstrap: str,
    catalog: TopicCatalog,
    *,
    replication_factor: int = 1,
    request_timeout_ms: int = 10_000,
    require_partitions: bool = False,
) -> list[str]:
    """Create every catalog topic that does not exist yet; return the names created.

    Existing topics with a different partition count are reported, not altered:
    changing partitions moves keys, which an operator must decide to do. With
    `require_partitions` that is an error (`PartitionCountMismatch`): a worker routes
    payment keys to state partitions by the configured count.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=request_timeout_ms)
    try:  # a start that fails half-way must still close the connections it opened
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [t for t in catalog.new_topics(replication_factor) if t.name not in existing]
        created: list[str] = []
        if wanted:
            response = await admin.create_topics(wanted)
            for name, code, message in _topic_errors(response):
                if code == 0:
                    created.append(name)
                elif code != TopicAlreadyExistsError.errno:
                    raise RuntimeError(f"cannot create topic {name}: error {code} {message or ''}".strip())
        described = await admin.describe_topics([catalog.name(s) for s in ALL_SPECS])
        other: dict[str, int] = {}
        for topic in described:
            count = len(topic.get("partitions", []))
            if count != catalog.partitions:
                other[str(topic.get("topic"))] = count
                log.warning(
                    "topic has a different partition count than configured",
                    extra={"topic": topic.get("topic"), "partitions": count, "configured": catalog.partitions},
                )
        if other and require_partitions:
            raise PartitionCountMismatch(catalog.partitions, other)
        if created:
            log.info("topics created", extra={"topics": created, "partitions": catalog.partitions})
        return created
    finally:
        await admin.close()


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    errors = getattr(response, "topic_errors", [])
    result = []
    for item in errors:
        name, code = item[0], item[1]
        message = item[2] if len(item) > 2 else None
        result.append((name, code, message))
    return result
