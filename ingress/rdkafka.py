"""The librdkafka (confluent-kafka) producer behind the `Publisher` interface.

Same contract as `ingress.publisher.Publisher`: `publish` returns only after the
broker acknowledged (acks=all); a broker that is away or slower than `timeout_s`
is a `PublishError` (503), a record the broker or producer refuses is a
`RecordRejectedError` for that request only.

Why it cannot store a 503'd record later, with public API only:
`message.timeout.ms` (which also bounds librdkafka's produce request) is set
below the publish bound, so librdkafka itself fails a record it could not
deliver in time and reports that before our bound; each such record is
answered 503 alone. Only when our bound expires first (librdkafka's timeout
scan ran late) are the queued records failed with `purge(in_queue=True)`, so
that one is never sent either. As with aiokafka, only a record already on the
wire can still land; the provider's retry then becomes a duplicate that dedup
drops.

Unlike aiokafka, librdkafka reconnects by itself, so a timeout does not cost the
producer. It is replaced only after a fatal error (an idempotent producer that
lost its sequence state cannot go on).

`partitioner=murmur2_random` places keyed records where aiokafka and the Java
client do (`schemas.topics.partition_for`). Idempotence is what `producer_options`
says: on for Apache Kafka, off on the embedded broker, where librdkafka's
InitProducerId works but cut throughput 4-6x (31k vs 119-179k msg/s) and a
producer never delivered again after a new broker incarnation (different
ClusterId, every record timed out) -- measured, see docs/architecture.md.

Delivery reports are served by one thread per producer calling `poll`; each
report resolves its request's future on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ingress.exceptions import PublishError, RecordRejectedError

__all__ = ["ConfluentPublisher", "librdkafka_config", "librdkafka_timeout_ms"]

log = logging.getLogger("paystream.ingress.rdkafka")

_TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE})
_RECORD_LEVEL = _TOO_LARGE | {KafkaError.INVALID_MSG, KafkaError.INVALID_RECORD, KafkaError.INVALID_TIMESTAMP,
                              KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT, KafkaError._BAD_MSG}
"""Errors about one record, not the broker: answered for that request only."""

_OPTION_NAMES = {
    "acks": "acks",
    "enable_idempotence": "enable.idempotence",
    "linger_ms": "linger.ms",
    "max_request_size": "message.max.bytes",
}
"""The aiokafka keyword arguments `producer_options` (ground: `paystream.core.broker`) uses, in librdkafka's names."""

_POLL_S = 0.1
_SCAN_MARGIN_S = 1.5
"""librdkafka looks for records past `message.timeout.ms` (queued or in flight) once a second
(rdkafka_broker.c), so a record can outlive that bound by up to a second; plus the delivery thread's poll
and a loaded machine's scheduling."""
_STATS_MS = 500
_BATCH_BYTES = 16_384
"""aiokafka's default batch size. librdkafka never splits a batch the broker refuses, and fails every record
in it; a record larger than `batch.size` always gets a batch of its own, so a too-large envelope (the only
kind a sane broker refuses) fails alone instead of taking small, valid records with it (measured: with the
default 1 MB batches, four 100-byte records got the big one's MSG_SIZE_TOO_LARGE, i.e. a 413 for a valid event)."""


def librdkafka_config(options: dict[str, Any]) -> dict[str, Any]:
    """Translate aiokafka producer keywords; an option we do not know is an error, not silently dropped."""
    unknown = set(options) - set(_OPTION_NAMES)
    if unknown:
        raise ValueError(f"no librdkafka equivalent for producer option(s) {sorted(unknown)}")
    return {_OPTION_NAMES[name]: value for name, value in options.items()}


def librdkafka_timeout_ms(timeout_s: float) -> int:
    """librdkafka's own bound on a record (`message.timeout.ms`, `request.timeout.ms`): the publish bound less
    `_SCAN_MARGIN_S`, so librdkafka reports a record it cannot deliver before the ingress gives up on it. A bound
    under 3 s leaves no room for that: librdkafka then gets three quarters of it (at most 1.5 s; measured: 0.5 s
    of a 1 s bound was too short for the first record on a just-started Apache Kafka) and the purge covers the rest.

    Why not the publish bound itself: our bound then expired first, and the purge that has to follow fails
    every queued record, also those of requests whose partition has a live, in-sync leader (measured with a
    kill -9 of one of three Apache Kafka brokers: 30 of 32 503s were such collateral, answered to requests
    sent a fraction of a second earlier; tests/reliability/test_broker_failover.py)."""
    return max(int((timeout_s - _SCAN_MARGIN_S) * 1000), int(min(timeout_s * 0.75, _SCAN_MARGIN_S) * 1000), 1)


def _error_of(exc: KafkaException) -> KafkaError | None:
    error = exc.args[0] if exc.args else None
    return error if isinstance(error, KafkaError) else None


def _rejected(error: KafkaError) -> RecordRejectedError:
    return RecordRejectedError(f"broker refused the record: {error.name()}: {error.str()}",
                               too_large=error.code() in _TOO_LARGE)


class _Running:
    """One librdkafka producer and the thread that serves its delivery reports."""

    def __init__(self, config: dict[str, Any], on_error: Callable[[KafkaError], None]) -> None:
        # not a closure over self: a Producer -> callback -> self cycle would keep the producer (and its broker
        # connections) alive after close until the garbage collector runs (measured: a broker's stop waited 5 s)
        self._fatal = fatal = threading.Event()
        self.idempotent = bool(config.get("enable.idempotence"))
        # librdkafka's eos.idemp_state from its statistics, and whether a record was acknowledged since: the
        # statistics are snapshots up to _STATS_MS old (measured: "RequestPID" after the first delivery)
        self._eos = eos = {"state": "unknown", "delivered": False}

        def error_cb(error: KafkaError) -> None:
            if error.fatal():
                fatal.set()
            on_error(error)

        def stats_cb(stats: str) -> None:
            eos["state"] = json.loads(stats).get("eos", {}).get("idemp_state", "unknown")
            if eos["state"] != "Assigned":
                eos["delivered"] = False

        extra: dict[str, Any] = {"error_cb": error_cb}
        if self.idempotent:  # an idempotent producer cannot send before InitProducerId: /ready must say so
            extra |= {"stats_cb": stats_cb, "statistics.interval.ms": _STATS_MS}
        self.producer = Producer({**config, **extra})
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="rdkafka-delivery", daemon=True)
        self._thread.start()

    @property
    def fatal(self) -> bool:
        return self._fatal.is_set()

    @property
    def can_send(self) -> bool:
        """False while an idempotent producer has no producer id yet (e.g. the coordinator is still loading)."""
        return not self.idempotent or self._eos["state"] == "Assigned" or bool(self._eos["delivered"])

    def acknowledged(self) -> None:
        self._eos["delivered"] = True

    def _serve(self) -> None:
        while not self._closing.is_set():
            self.producer.poll(_POLL_S)
        self.producer.poll(0)

    def close(self, flush_s: float) -> None:
        """Deliver what can be delivered within `flush_s`, fail the rest, stop the thread (blocking)."""
        self.producer.flush(flush_s)
        self.producer.purge(in_queue=True, in_flight=True, blocking=False)
        self.producer.flush(0)
        self._closing.set()
        self._thread.join()
        self.producer.close()  # closes the broker connections now, not when the garbage collector gets to it


class _Purged(PublishError):
    """Failed by a purge another request started: that request already dealt with the producer."""


class ConfluentPublisher:
    """Owns one librdkafka producer; librdkafka reconnects by itself when the broker is away."""

    def __init__(
        self,
        bootstrap: str,
        *,
        producer_options: dict[str, Any],
        timeout_s: float = 5.0,
        client_id: str = "paystream-ingress",
        reconnect_interval_s: float = 1.0,
    ) -> None:
        timeout_ms = max(int(timeout_s * 1000), 1)
        record_timeout_ms = librdkafka_timeout_ms(timeout_s)
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "partitioner": "murmur2_random",  # keyed records land where aiokafka's and Java's do
            # librdkafka's own bound: never delivers a record after it, and reports it before our bound
            "message.timeout.ms": record_timeout_ms,
            "request.timeout.ms": record_timeout_ms,  # the broker's acks=all wait for a produce request
            "socket.connection.setup.timeout.ms": max(timeout_ms, 1000),
            "reconnect.backoff.ms": min(100, int(reconnect_interval_s * 1000)),
            "reconnect.backoff.max.ms": max(int(reconnect_interval_s * 1000), 1),
            "topic.metadata.refresh.interval.ms": 30_000,
            "batch.size": _BATCH_BYTES,
            "logger": log,
            **librdkafka_config(producer_options),
        }
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s
        self._running: _Running | None = None
        self._ready_checked_at = 0.0
        self._ready_cached = False
        self._background: set[asyncio.Task[None]] = set()
        self.last_error: str | None = None

    @property
    def started(self) -> bool:
        return self._running is not None

    @property
    def _producer(self) -> Producer | None:
        """The live librdkafka producer (tests compare identities, as for aiokafka's)."""
        return self._running.producer if self._running is not None else None

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's client-level errors (from the delivery thread): remembered for /ready."""
        self.last_error = f"{error.name()}: {error.str()}"
        if error.fatal():
            log.error("producer fatal error; it will be replaced", extra={"error": self.last_error})

    async def start(self) -> None:
        """Create the producer; it connects (and keeps reconnecting) in the background."""
        if self._running is None:
            self._running = _Running(self._config, self._on_error)
            log.info("producer created", extra={"bootstrap": self._bootstrap, "client": "confluent-kafka"})

    async def stop(self) -> None:
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await task
        if self._running is not None:
            running, self._running = self._running, None
            await asyncio.to_thread(running.close, self._timeout_s)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _failed(self, running: _Running, reason: str, *, purge: bool) -> None:
        """A publish failed: with `purge`, fail every record still queued (never sent later); replace the
        producer only if it is unusable."""
        self.last_error = reason
        self._ready_cached = False
        if purge:
            running.producer.purge(in_queue=True, in_flight=False, blocking=False)
        if not running.fatal:
            if purge:
                log.warning("unsent records dropped", extra={"reason": reason})
            return
        if self._running is running:
            self._running = _Running(self._config, self._on_error)
            log.warning("producer replaced after a fatal error", extra={"reason": reason})
        task = asyncio.create_task(asyncio.to_thread(running.close, 0))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> tuple[int, int]:
        """Send and wait for the broker's acknowledgement; returns (partition, offset)."""
        running = self._running
        if running is None:
            raise PublishError("not connected to the broker")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, int]] = loop.create_future()

        def delivered(error: KafkaError | None, message: Message) -> None:  # on the delivery thread
            loop.call_soon_threadsafe(_settle, future, error, message)

        try:
            running.producer.produce(topic, value, key, headers=list(headers), on_delivery=delivered)
        except BufferError as exc:  # queue.buffering.max.*: far beyond any request concurrency we allow
            raise PublishError("producer queue full") from exc
        except KafkaException as exc:
            error = _error_of(exc)
            if error is not None and error.code() in _RECORD_LEVEL:
                raise _rejected(error) from exc
            self._failed(running, f"{type(exc).__name__}: {exc}", purge=True)
            raise PublishError(f"producer refused the record: {exc}") from exc
        try:
            async with asyncio.timeout(self._timeout_s):
                placed = await future
            running.acknowledged()
            return placed
        except (RecordRejectedError, _Purged):
            raise
        except TimeoutError as exc:  # librdkafka has not reported on it yet: it may still be queued
            self._failed(running, "broker acknowledgement timed out", purge=True)
            raise PublishError(f"broker did not acknowledge within {self._timeout_s:g}s") from exc
        except PublishError as exc:
            # librdkafka reported this record's own fate (message.timeout.ms, a broker error): it is never sent
            # again, and every other queued record has its own bound, so nothing else is purged
            self._failed(running, str(exc), purge=False)
            raise

    async def ready(self, *, cache_s: float = 1.0, timeout_s: float = 2.0) -> bool:
        """True when a metadata round trip to the broker succeeds and, if idempotent, the producer has its
        producer id (cached briefly). Measured: on a just-started Apache Kafka, /ready said 200 from metadata
        alone while InitProducerId still got "coordinator load in progress" and a publish timed out."""
        running = self._running
        if running is None:
            return False
        now = time.monotonic()
        if now - self._ready_checked_at < cache_s:
            return self._ready_cached
        try:
            metadata = await asyncio.to_thread(running.producer.list_topics, None, timeout_s)
            self._ready_cached = bool(metadata.brokers) and running.can_send
            if not running.can_send:
                self.last_error = "idempotent producer has no producer id yet"
        except KafkaException as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._ready_cached = False
        self._ready_checked_at = time.monotonic()
        return self._ready_cached


def _settle(future: asyncio.Future[tuple[int, int]], error: KafkaError | None, message: Message) -> None:
    if future.done():  # answered already (timed out)
        return
    if error is None:
        future.set_result((message.partition() or 0, message.offset() or 0))
    elif error.code() in _RECORD_LEVEL:
        future.set_exception(_rejected(error))
    elif error.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
        future.set_exception(_Purged(f"dropped unsent after a failed publish: {error.name()}"))
    else:
        future.set_exception(PublishError(f"broker did not store the record: {error.name()}: {error.str()}"))
