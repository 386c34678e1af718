"""The dead-letter topic as the console shows it, and replaying one dead letter from there.

The worker's own `DeadLetters.recent` only knows what this process sent since it
started; the console lists payments.dlq.v1 itself (every worker's, across restarts),
read from the beginning by a plain consumer outside the group, keeping only headers
(no payloads: they may hold customer data) of the newest letters. A letter is named
by its place on the DLQ topic (`<partition>@<offset>`), which is what a replay needs.

Replaying goes through `paystream.core.dlq` — the same code as `paystream dlq replay` —
so the console and the CLI cannot disagree about where a letter goes or what it carries.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from paystream.core.dlq import DeadLetterRecord, read_dead_letters, replay_dead_letters
from paystream.core.topic_reader import follow as follow_topic
from schemas.dlq import parse_dlq_headers

__all__ = ["DeadLetterFeed", "LetterId", "now_iso", "replay_one"]

log = logging.getLogger("paystream.streams.ops")


@dataclass(frozen=True, slots=True)
class LetterId:
    """A dead letter's place on the DLQ topic."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}@{self.offset}"

    @classmethod
    def parse(cls, text: str) -> LetterId:
        """`<partition>@<offset>`; raises ValueError otherwise."""
        partition, sep, offset = text.partition("@")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise ValueError("a dead letter id is <partition>@<offset>")
        return cls(int(partition), int(offset))


class DeadLetterFeed:
    def __init__(self, *, keep: int = 50) -> None:
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self.count = 0
        self.replayed: dict[str, str] = {}
        """Letters replayed from this worker's console: id → when (ISO); kept for the process lifetime."""

    def add(self, partition: int, offset: int, key: bytes | None, headers: Sequence[tuple[str, bytes]]) -> None:
        try:
            info = parse_dlq_headers(headers)
        except (KeyError, ValueError):
            return  # not a dead letter paystream wrote
        self.count += 1
        self.recent.appendleft({
            "id": str(LetterId(partition, offset)), "failed_at": info.failed_at.isoformat(), "stage": info.stage,
            "key": (key or b"").decode("utf-8", "replace"), "error": info.exception_class,
            "message": info.exception_message[:500], "reason": info.reason, "attempts": info.attempts,
            "original": f"{info.original_topic}[{info.original_partition}]@{info.original_offset}",
        })

    def rows(self, limit: int = 20) -> list[dict[str, Any]]:
        return [row | {"replayed_at": self.replayed.get(row["id"])} for row in list(self.recent)[:limit]]

    async def follow(self, bootstrap: str, topic: str, partitions: Iterable[int], *, embedded: bool,
                     **options: Any) -> None:
        """Read `topic` from the beginning until cancelled."""
        async for record in follow_topic(bootstrap, topic, partitions, embedded=embedded, **options):
            self.add(record.partition, record.offset, record.key, list(record.headers or ()))


async def replay_one(bootstrap: str, dlq_topic: str, letter: LetterId, *, embedded: bool) -> bool:
    """Replay the dead letter at `letter` with `paystream dlq replay`'s code; False when there is none.

    Finds it by reading the DLQ topic (what the CLI does too): a replay is rare and
    operator-driven, and this keeps one reader of dead letters.
    """
    reader = cast(AsyncGenerator[DeadLetterRecord, None], read_dead_letters(bootstrap, dlq_topic, embedded=embedded))
    async with aclosing(reader) as letters:  # stops its consumer when we stop early
        async for record in letters:
            if record.partition == letter.partition and record.offset == letter.offset:
                found = record
                break
        else:
            return False
    sent = await replay_dead_letters(bootstrap, [found], embedded=embedded, dlq_topic=dlq_topic)
    log.warning("dead letter replayed from the ops console", extra={"dlq": str(letter), "stage": found.info.stage,
                                                                   "key": (found.key or b"").decode("utf-8",
                                                                                                   "replace")})
    return sent == 1


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
