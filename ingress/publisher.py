"""The producer wrapper: acks=all, bounded waits, and an honest health signal.

The ingress answers 2xx only after `publish` returns, i.e. after the broker
acknowledged the record. When the broker is unreachable or slower than
`timeout_s`, `publish` raises `PublishError` and the caller answers 503 so the
provider retries.

A record we answered 503 for must not be stored later behind our back: aiokafka
keeps unsent batches for a known-but-unreachable broker indefinitely and would
deliver them when it returns (measured: a 503'd event appeared on the next
broker incarnation). So when the broker is unavailable or does not acknowledge
within the bound, the producer is abandoned: its unsent batches are failed and
dropped, and a fresh producer reconnects. Only a record already on the wire when
the bound expires can still land; the provider's retry then becomes a duplicate
that dedup drops.

A record-level refusal (too large, corrupt, bad timestamp) says nothing about the
broker: that one request gets `RecordRejectedError` and the producer, with every
other request in flight, is kept. aiokafka checks `max_request_size` before
queueing; a record the broker refuses fails only its own batch, because a record
larger than `max_batch_size` always gets a batch of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol, Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)

from ingress.exceptions import PublishError, RecordRejectedError

__all__ = ["BrokerPublisher", "Publisher"]

log = logging.getLogger("paystream.ingress.publisher")

_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)
_RECORD_LEVEL = (*_TOO_LARGE, CorruptRecordException, InvalidMessageError, InvalidTimestampError,
                 UnsupportedForMessageFormatError)
"""Errors about one record, not the broker: answered for that request only, never abandoning the producer."""


def _record_rejected(exc: KafkaError) -> RecordRejectedError:
    return RecordRejectedError(f"broker refused the record: {type(exc).__name__}: {exc}",
                               too_large=isinstance(exc, _TOO_LARGE))


class BrokerPublisher(Protocol):
    """What the ingress needs from a producer: `Publisher` (aiokafka) and `ConfluentPublisher` (librdkafka)."""

    last_error: str | None

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ready(self) -> bool: ...

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> tuple[int, int]: ...


class Publisher:
    """Owns one AIOKafkaProducer; reconnects in the background when the broker is away."""

    def __init__(
        self,
        bootstrap: str,
        *,
        producer_options: dict[str, Any],
        timeout_s: float = 5.0,
        client_id: str = "paystream-ingress",
        reconnect_interval_s: float = 1.0,
    ) -> None:
        self._bootstrap = bootstrap
        self._options = producer_options
        self._timeout_s = timeout_s
        self._client_id = client_id
        self._reconnect_interval_s = reconnect_interval_s
        self._producer: AIOKafkaProducer | None = None
        self._created: weakref.WeakSet[AIOKafkaProducer] = weakref.WeakSet()
        self._connector: asyncio.Task[None] | None = None
        self._ready_checked_at = 0.0
        self._ready_cached = False
        self._background: set[asyncio.Task[None]] = set()
        self.last_error: str | None = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    def _new_producer(self) -> AIOKafkaProducer:
        timeout_ms = int(self._timeout_s * 1000)
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            request_timeout_ms=timeout_ms,
            metadata_max_age_ms=30_000,
            **self._options,
        )
        self._created.add(producer)
        return producer

    async def _try_start(self) -> bool:
        producer = self._new_producer()
        try:
            await producer.start()
        except asyncio.CancelledError:  # stopped while connecting: close what the half-started client opened
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        except (KafkaError, OSError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                await producer.stop()
            return False
        self._producer = producer
        self.last_error = None
        log.info("producer connected", extra={"bootstrap": self._bootstrap})
        return True

    async def _connect_forever(self) -> None:
        while not await self._try_start():
            log.warning("broker unreachable; retrying", extra={"bootstrap": self._bootstrap, "error": self.last_error})
            await asyncio.sleep(self._reconnect_interval_s)

    async def start(self) -> None:
        """Connect if the broker is there; otherwise keep trying in the background (and answer 503 meanwhile)."""
        if self._producer is None and not await self._try_start():
            log.warning("broker unreachable at start; will keep retrying",
                        extra={"bootstrap": self._bootstrap, "error": self.last_error})
            self._connector = asyncio.create_task(self._connect_forever())

    async def stop(self) -> None:
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await task
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
            self._connector = None
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
        # An abandoned or half-started producer whose stop failed (a paused broker) may still hold connections:
        # close every client this publisher made, so nothing outlives its event loop.
        for created in list(self._created):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(created.client.close(), self._timeout_s)
        self._created.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _abandon(self, producer: AIOKafkaProducer, reason: str) -> None:
        """Fail and drop every record this producer has not delivered, then reconnect afresh."""
        accumulator = producer._message_accumulator  # aiokafka has no public abort
        if self._producer is not producer:
            return  # another request already abandoned it
        self._producer = None
        self._ready_cached = False
        accumulator.fail_all(PublishError(reason))
        accumulator._batches.clear()
        log.warning("producer abandoned; unsent records dropped", extra={"reason": reason})
        task = asyncio.create_task(self._replace(producer))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _replace(self, producer: AIOKafkaProducer) -> None:
        with contextlib.suppress(Exception):
            await producer.stop()
        if self._connector is None or self._connector.done():
            self._connector = asyncio.create_task(self._connect_forever())

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> tuple[int, int]:
        """Send and wait for the broker's acknowledgement; returns (partition, offset)."""
        producer = self._producer
        if producer is None:
            raise PublishError("not connected to the broker")
        try:
            async with asyncio.timeout(self._timeout_s):
                future = await producer.send(topic, value=value, key=key, headers=list(headers))
                metadata = await future
        except _RECORD_LEVEL as exc:
            raise _record_rejected(exc) from exc
        except TimeoutError as exc:
            self.last_error = "broker acknowledgement timed out"
            self._abandon(producer, self.last_error)
            raise PublishError(f"broker did not acknowledge within {self._timeout_s:g}s") from exc
        except (KafkaError, PublishError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._abandon(producer, self.last_error)
            raise PublishError(f"broker refused the record: {type(exc).__name__}") from exc
        return metadata.partition, metadata.offset

    async def ready(self, *, cache_s: float = 1.0, timeout_s: float = 2.0) -> bool:
        """True when connected and a metadata round trip to the broker succeeds (cached briefly)."""
        producer = self._producer
        if producer is None:
            return False
        now = time.monotonic()
        if now - self._ready_checked_at < cache_s:
            return self._ready_cached
        try:
            async with asyncio.timeout(timeout_s):
                await producer.client.fetch_all_metadata()
            self._ready_cached = True
        except (TimeoutError, KafkaError, OSError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._ready_cached = False
        self._ready_checked_at = time.monotonic()
        return self._ready_cached
