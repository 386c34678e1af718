"""Dead letters: the original key and bytes, plus headers that say where and why.

Every agent sends failures here instead of raising, so a poison record never
crashes or stalls a worker. Sends go through the worker's producer, and the
stages wait for their acknowledgements before the batch is acknowledged to Faust.

A record that failed after its raw record was deduplicated (the state stage) is
dead-lettered as its `Replacement`, the encoded `PaymentEvent` for the state-input
topic: replaying the raw record would only be dropped as a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.clock import now_ms
from schemas.dlq import attempts_of, dlq_headers

__all__ = ["DeadLetter", "DeadLetters", "Replacement", "record_headers"]

log = logging.getLogger("paystream.streams.dlq")


def record_headers(message: Any) -> list[tuple[str, bytes]]:
    """A consumed record's headers as (name, bytes) pairs, whichever shape the client gave them in."""
    headers = message.headers or []
    if isinstance(headers, dict):
        return [(k, v) for k, v in headers.items() if isinstance(v, bytes)]
    return [(k, v) for k, v in headers if isinstance(v, bytes)]


@dataclass(frozen=True, slots=True)
class Replacement:
    """What to dead-letter instead of the consumed record, and the topic `dlq replay` puts it on."""

    topic: str
    partition: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """What the ops views show of a recent dead letter (no payload: it may hold customer data)."""

    original_topic: str
    original_partition: int
    original_offset: int
    key: str
    stage: str
    exception_class: str
    message: str
    reason: str | None
    failed_at: datetime


class DeadLetters:
    def __init__(self, app: Any, topic: str, *, metrics: Any = None, keep: int = 100) -> None:
        self._app = app
        self.topic = topic
        self._metrics = metrics
        self.recent: deque[DeadLetter] = deque(maxlen=keep)
        self.count = 0

    async def send(self, message: Any, stage: str, error: BaseException, *, reason: str | None = None,
                   extra_headers: list[tuple[str, bytes]] | None = None,
                   replacement: Replacement | None = None) -> asyncio.Future[Any]:
        """Dead-letter one consumed record (`message` is a Faust/aiokafka message, None for a record the
        worker made itself), or `replacement` in its place."""
        failed_at = now_ms()
        carried = record_headers(message) if message is not None else []
        if message is not None:
            topic, partition, offset = message.topic, message.partition, message.offset
        else:
            assert replacement is not None, "a dead letter needs the consumed record or its replacement"
            topic, partition, offset = replacement.topic, replacement.partition, -1
        attempts = 1 + max(attempts_of(carried), attempts_of(replacement.headers if replacement else []))
        headers = dlq_headers(original_topic=topic, original_partition=partition, original_offset=offset,
                              stage=stage, error=error, reason=reason, failed_at=failed_at, attempts=attempts,
                              replay_topic=replacement.topic if replacement else None)
        if replacement is not None:
            key, value = replacement.key, replacement.value
            headers.extend(h for h in replacement.headers if not h[0].startswith("dlq."))
        else:
            key = message.key if isinstance(message.key, bytes) else (message.key or "").encode()
            value = message.value
            headers.extend(h for h in carried if h[0] == "traceparent")
        headers.extend(extra_headers or [])
        future: asyncio.Future[Any] = await self._app.producer.send(self.topic, key, value, None, None, headers)
        letter = DeadLetter(topic, partition, offset, key.decode("utf-8", "replace"), stage, type(error).__name__,
                            str(error)[:500], reason, failed_at)
        self.recent.appendleft(letter)
        self.count += 1
        if self._metrics is not None:
            self._metrics.dead_letters.labels(stage).inc()
        log.warning("record dead-lettered", extra={"topic": topic, "partition": partition, "offset": offset,
                                                   "key": letter.key, "stage": stage, "attempts": attempts,
                                                   "reason": reason or type(error).__name__})
        return future
