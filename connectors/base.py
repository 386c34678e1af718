"""The sink contract: what the runner needs from any target.

A sink buffers consumed records (`add`), writes them together with the next
offsets in one database transaction (`flush`), and reads those offsets back so
the runner can seek to them (`stored_offsets`). The database, not Kafka's group
commit, is the source of truth for progress, which makes at-least-once delivery
land exactly once. A target that cannot take writes raises
`SinkBackpressureError` from `flush`; the batch stays buffered for the retry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import NamedTuple, Self

from connectors.exceptions import SinkBackpressureError

__all__ = [
    "DeadLetterFn",
    "FlushResult",
    "Rejected",
    "Sink",
    "SinkBackpressureError",
    "SinkRecord",
    "TopicPartitionKey",
]

TopicPartitionKey = tuple[str, int]


class SinkRecord(NamedTuple):
    """One consumed Kafka record, as the sink sees it (no aiokafka types; a tuple because it is made per record)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0

    @property
    def tp(self) -> TopicPartitionKey:
        return (self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record the sink could not land (undecodable, or refused by the database)."""

    record: SinkRecord
    error: BaseException


DeadLetterFn = Callable[[Sequence[Rejected]], Awaitable[None]]
"""Publishes rejected records to the dead-letter topic; must not return before the broker acknowledged."""


@dataclass(slots=True)
class FlushResult:
    """What one committed flush did."""

    records: int = 0
    """Records consumed by the batch (rows, rejects and skipped tombstones)."""
    rows: dict[str, int] = field(default_factory=dict)
    """Rows inserted or updated per table (conflicts that changed nothing are not counted)."""
    rejected: list[Rejected] = field(default_factory=list)
    offsets: dict[TopicPartitionKey, int] = field(default_factory=dict)
    """Next offset per partition, as committed."""
    seconds: float = 0.0
    received_ms: list[int] = field(default_factory=list)
    """When the ingress received each committed payment event (epoch ms): the end-to-end histogram's input."""
    diverged: int = 0
    """Payment states that disagreed with the stored row: neither's events include the other's."""


class Sink(ABC):
    """Start/stop (or `async with`), `add` records, `flush` a batch, read stored offsets."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare resources; connecting may be lazy so a sink can start while its database is down."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Does not flush: the runner decides whether a final flush is wanted."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @abstractmethod
    def add(self, record: SinkRecord) -> None:
        """Buffer one record; nothing is written before `flush`."""

    def extend(self, records: Iterable[SinkRecord]) -> None:
        """Buffer many records, in order."""
        for record in records:
            self.add(record)

    @property
    @abstractmethod
    def pending(self) -> int:
        """Records not yet committed (buffered plus those of a flush in progress)."""

    @property
    @abstractmethod
    def buffered(self) -> int:
        """Records the next `flush` will write."""

    @abstractmethod
    def discard(self, partitions: Iterable[TopicPartitionKey]) -> int:
        """Drop buffered records of partitions this process no longer owns; they will be re-read."""

    @abstractmethod
    async def flush(self) -> FlushResult:
        """Write the buffer and its offsets in one transaction.

        Records added while a flush runs belong to the next one. Raises
        `SinkBackpressureError` when the target cannot take writes; the records go
        back to the front of the buffer, so calling `flush` again retries them first.
        """

    @abstractmethod
    async def stored_offsets(self) -> dict[TopicPartitionKey, int]:
        """Next offset per partition, for the current broker incarnation."""

    @abstractmethod
    async def use_incarnation(self, cluster_id: str) -> int:
        """Write under this broker incarnation from now on; drop offsets stored under another one.

        Returns how many stored offsets were reset.
        """
