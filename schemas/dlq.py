"""Dead-letter record headers (Kafka Connect's set as the model).

A dead letter keeps the original key and the original bytes; these headers
say where it came from and why it failed, so `paystream dlq replay` can put it
back on its original topic. A state-stage dead letter keeps the `PaymentEvent`
instead (its raw record was already deduplicated) and names the topic to replay
it to in `dlq.replay.topic`. `dlq.attempts` counts how often the record has
failed: a replayed record carries it, and failing again adds one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from schemas.clock import now_ms

__all__ = ["ATTEMPTS", "DLQ_STAGES", "REPLAYED_FROM", "DeadLetterInfo", "attempts_of", "dlq_headers",
           "parse_dlq_headers"]

DLQ_STAGES = ("verify", "decode", "dedup", "normalize", "state", "reconcile", "sink")
_MAX_MESSAGE = 2000

ORIGINAL_TOPIC = "dlq.original.topic"
ORIGINAL_PARTITION = "dlq.original.partition"
ORIGINAL_OFFSET = "dlq.original.offset"
STAGE = "dlq.stage"
EXCEPTION_CLASS = "dlq.exception.class"
EXCEPTION_MESSAGE = "dlq.exception.message"
FAILED_AT = "dlq.failed_at"
ATTEMPTS = "dlq.attempts"
REASON = "dlq.reason"
REPLAY_TOPIC = "dlq.replay.topic"
REPLAYED_FROM = "dlq.replayed_from"
"""On a replayed record: the dead letter it came from (`<dlq topic>:<partition>:<offset>`)."""


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    original_topic: str
    original_partition: int
    original_offset: int
    stage: str
    exception_class: str
    exception_message: str
    failed_at: datetime
    attempts: int = 1
    reason: str | None = None
    replay_topic: str | None = None

    @property
    def target_topic(self) -> str:
        """Where `paystream dlq replay` puts the record back."""
        return self.replay_topic or self.original_topic


def dlq_headers(
    *,
    original_topic: str,
    original_partition: int,
    original_offset: int,
    stage: str,
    error: BaseException | None = None,
    exception_class: str | None = None,
    message: str | None = None,
    reason: str | None = None,
    attempts: int = 1,
    failed_at: datetime | None = None,
    replay_topic: str | None = None,
    extra: Sequence[tuple[str, bytes]] = (),
) -> list[tuple[str, bytes]]:
    """Kafka headers for a dead letter. Messages are truncated; never put secrets in them."""
    if stage not in DLQ_STAGES:
        raise ValueError(f"unknown DLQ stage {stage!r}")
    cls = exception_class or (type(error).__name__ if error is not None else "Error")
    text = message if message is not None else (str(error) if error is not None else "")
    when = failed_at or now_ms()
    headers = [
        (ORIGINAL_TOPIC, original_topic.encode()),
        (ORIGINAL_PARTITION, str(original_partition).encode()),
        (ORIGINAL_OFFSET, str(original_offset).encode()),
        (STAGE, stage.encode()),
        (EXCEPTION_CLASS, cls.encode()),
        (EXCEPTION_MESSAGE, text[:_MAX_MESSAGE].encode("utf-8", "replace")),
        (FAILED_AT, when.isoformat().encode()),
        (ATTEMPTS, str(attempts).encode()),
    ]
    if reason:
        headers.append((REASON, reason.encode()))
    if replay_topic:
        headers.append((REPLAY_TOPIC, replay_topic.encode()))
    headers.extend(extra)
    return headers


def parse_dlq_headers(headers: Sequence[tuple[str, bytes]]) -> DeadLetterInfo:
    """The inverse of `dlq_headers`; raises `KeyError`/`ValueError` on a record that is not a dead letter."""
    values = {k: v.decode("utf-8", "replace") for k, v in headers}
    return DeadLetterInfo(
        original_topic=values[ORIGINAL_TOPIC],
        original_partition=int(values[ORIGINAL_PARTITION]),
        original_offset=int(values[ORIGINAL_OFFSET]),
        stage=values[STAGE],
        exception_class=values.get(EXCEPTION_CLASS, ""),
        exception_message=values.get(EXCEPTION_MESSAGE, ""),
        failed_at=datetime.fromisoformat(values[FAILED_AT]),
        attempts=int(values.get(ATTEMPTS, "1")),
        reason=values.get(REASON),
        replay_topic=values.get(REPLAY_TOPIC),
    )


def attempts_of(headers: Sequence[tuple[str, bytes | None]]) -> int:
    """How often a record has failed before (0 unless it is a replayed dead letter)."""
    for name, value in headers:
        if name == ATTEMPTS and value:
            try:
                return max(0, int(value))
            except ValueError:
                return 0
    return 0
