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

from aiokafka import AIOKafkaProducer

from paystream.core.broker import producer_options
from paystream.core.topic_reader import read_to_end
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
    async for record in read_to_end(bootstrap, topic, embedded=embedded):
        headers = list(record.headers or [])
        try:
            info = parse_dlq_headers(headers)
        except (KeyError, ValueError):
            continue  # not a dead letter we wrote
        if stage is not None and info.stage != stage:
            continue
        if since is not None and info.failed_at < since:
            continue
        yield DeadLetterRecord(record.partition, record.offset, record.key, record.value, info, headers)


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
