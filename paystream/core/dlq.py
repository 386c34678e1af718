"""Reading and replaying dead letters (the library behind `paystream dlq`).

A replay puts a dead letter's key and bytes on the topic it names (`DeadLetterInfo.target_topic`:
the original topic, or the state-input topic for a state-stage dead letter, which holds the
`PaymentEvent`), with the headers it carried and `dlq.attempts` = how often it has failed, so a
worker that dead-letters it again counts one more attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition

from paystream.core.broker import CompatConsumer, producer_options
from schemas.dlq import ATTEMPTS, REPLAYED_FROM, DeadLetterInfo, parse_dlq_headers

__all__ = ["DeadLetterRecord", "read_dead_letters", "replay_dead_letters"]


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    info: DeadLetterInfo
    headers: list[tuple[str, bytes]]


async def read_dead_letters(bootstrap: str, topic: str, *, stage: str | None = None,
                            since: datetime | None = None, embedded: bool = True) -> AsyncIterator[DeadLetterRecord]:
    """Every dead letter currently on `topic`, oldest first per partition, optionally filtered."""
    consumer = CompatConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                              embedded=embedded)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await consumer._client._wait_on_metadata(topic))]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = await consumer.getmany(
                *remaining, timeout_ms=1000)
            if not batch:
                remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
                continue
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp] - 1:
                        remaining.discard(tp)
                    if record.offset >= ends[tp]:
                        continue
                    headers = list(record.headers or [])
                    try:
                        info = parse_dlq_headers(headers)
                    except (KeyError, ValueError):
                        continue  # not a dead letter we wrote
                    if stage is not None and info.stage != stage:
                        continue
                    if since is not None and info.failed_at < since:
                        continue
                    yield DeadLetterRecord(tp.partition, record.offset, record.key, record.value, info, headers)
    finally:
        await consumer.stop()


async def replay_dead_letters(bootstrap: str, records: list[DeadLetterRecord], *, embedded: bool,
                              dlq_topic: str) -> int:
    """Put each record's key and bytes back on its target topic (acks=all)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **producer_options(embedded=embedded))
    await producer.start()
    try:
        futures = []
        for record in records:
            headers = [(k, v) for k, v in record.headers if not k.startswith("dlq.")]
            headers.append((ATTEMPTS, str(record.info.attempts).encode()))
            headers.append((REPLAYED_FROM, f"{dlq_topic}:{record.partition}:{record.offset}".encode()))
            futures.append(await producer.send(record.info.target_topic, record.value, key=record.key,
                                               headers=headers))
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()
