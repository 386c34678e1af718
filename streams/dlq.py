"""Dead letters: the original key and bytes, plus headers that say where and why.

Every agent sends failures here instead of raising, so a poison record never
crashes or stalls a worker. Sends go through the worker's producer, so Faust
flushes them before it commits the offset of the record that caused them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.clock import now_ms
from schemas.dlq import dlq_headers

__all__ = ["DeadLetter", "DeadLetters"]

log = logging.getLogger("paystream.streams.dlq")


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
                   extra_headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[Any]:
        """Dead-letter one consumed record (`message` is a Faust/aiokafka message)."""
        failed_at = now_ms()
        headers = dlq_headers(original_topic=message.topic, original_partition=message.partition,
                              original_offset=message.offset, stage=stage, error=error, reason=reason,
                              failed_at=failed_at)
        for name, value in list(message.headers or ()):
            if name == "traceparent":
                headers.append((name, value))
        headers.extend(extra_headers or [])
        key = message.key if isinstance(message.key, bytes) else (message.key or "").encode()
        future: asyncio.Future[Any] = await self._app.producer.send(self.topic, key, message.value, None, None,
                                                                   headers)
        letter = DeadLetter(message.topic, message.partition, message.offset, key.decode("utf-8", "replace"),
                            stage, type(error).__name__, str(error)[:500], reason, failed_at)
        self.recent.appendleft(letter)
        self.count += 1
        if self._metrics is not None:
            self._metrics.dead_letters.labels(stage).inc()
        log.warning("record dead-lettered", extra={"topic": message.topic, "partition": message.partition,
                                                   "offset": message.offset, "key": letter.key, "stage": stage,
                                                   "reason": reason or type(error).__name__})
        return future
