"""Which partitions can take an acks=all write right now, sampled from the cluster's metadata.

The failover test needs the window in which the cluster itself could not store a record, measured
independently of the ingress: from the kill until every partition again has a live leader whose
in-sync replica set holds only live brokers and at least `min.insync.replicas` of them. Until the
controller fences the dead broker, the metadata still names it as leader (of its partitions) and as
in-sync follower (of the others, whose acks=all writes wait for it), so both count as unwritable.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

__all__ = ["LeaderWatch", "PartitionState", "Sample", "watching"]

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class PartitionState:
    leader: int
    isr: frozenset[int]
    replicas: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Sample:
    """One metadata answer; `at` is when it arrived (monotonic), `live` the brokers running then."""

    at: float
    partitions: dict[TopicPartition, PartitionState]
    live: frozenset[int]

    @property
    def topics(self) -> set[str]:
        return {tp[0] for tp in self.partitions}

    def unwritable(self, topics: Iterable[str], min_isr: int = 2) -> set[TopicPartition]:
        """Partitions of `topics` where an acks=all write cannot be acknowledged in this state."""
        wanted = set(topics)
        return {tp for tp, state in self.partitions.items() if tp[0] in wanted and not (
            state.leader in self.live and state.isr <= self.live and len(state.isr) >= min_isr)}

    def led_by(self, node: int, topics: Iterable[str] | None = None) -> int:
        wanted = None if topics is None else set(topics)
        return sum(1 for tp, state in self.partitions.items()
                   if state.leader == node and (wanted is None or tp[0] in wanted))


@dataclass
class LeaderWatch:
    """Polls Metadata every `interval_s` until cancelled (librdkafka's admin client, on a thread)."""

    bootstrap: str
    live: Callable[[], frozenset[int]]
    interval_s: float = 0.1
    samples: list[Sample] = field(default_factory=list)
    errors: int = 0

    async def run(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 2000})
        while True:
            live = self.live()
            try:
                metadata = await asyncio.to_thread(admin.list_topics, None, 2.0)
            except KafkaException:
                self.errors += 1
            else:
                partitions = {(name, p.id): PartitionState(p.leader, frozenset(p.isrs), tuple(p.replicas))
                              for name, topic in metadata.topics.items() for p in topic.partitions.values()}
                # a broker started or killed while the request was out: the sample says nothing for sure
                if live == self.live():
                    self.samples.append(Sample(time.monotonic(), partitions, live))
            await asyncio.sleep(self.interval_s)

    @property
    def latest(self) -> Sample:
        return self.samples[-1]

    async def wait_for(self, check: Callable[[Sample], bool], timeout_s: float, what: str) -> Sample:
        """The first sample taken from now on that satisfies `check`."""
        seen, deadline = len(self.samples), time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for sample in self.samples[seen:]:
                if check(sample):
                    return sample
            seen = len(self.samples)
            await asyncio.sleep(self.interval_s / 2)
        raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")

    def window(self, topics: Iterable[str], after: float, min_isr: int = 2) -> tuple[float, float] | None:
        """(first, last) time after `after` at which a sample showed an unwritable partition of `topics`;
        None when no sample did."""
        wanted = list(topics)
        times = [s.at for s in self.samples if s.at >= after and s.unwritable(wanted, min_isr)]
        return (times[0], times[-1]) if times else None

    def writable_again(self, topics: Iterable[str], after: float, min_isr: int = 2) -> float:
        """When the first sample after the last unwritable one (after `after`) arrived: the window's end,
        late by at most one poll."""
        wanted = list(topics)
        last_bad = self.window(wanted, after, min_isr)
        since = last_bad[1] if last_bad else after
        for sample in self.samples:
            if sample.at > since and not sample.unwritable(wanted, min_isr):
                return sample.at
        raise AssertionError("the cluster never became writable again")


@contextlib.asynccontextmanager
async def watching(watch: LeaderWatch) -> AsyncIterator[LeaderWatch]:
    """Sample in the background for the duration of the block."""
    task = asyncio.create_task(watch.run())
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
