"""Deduplication decisions: the first sighting of each provider event, and what a new sighting means.

Effectively-once rests on this table (DESIGN.md): the raw topic is keyed by
`<provider>:<provider_event_id>`, and each key's first (partition, offset) is
remembered with a digest of the body.

- the key was never seen                     → NEW: process it
- seen at this very (partition, offset)      → REPLAY after a crash: emit its outputs again
- seen at another offset, same body digest   → DUPLICATE (a provider retry): drop and count
- seen at another offset, different digest   → CONFLICT: dead-letter it, never drop silently

Entries expire in *event time* (the ingress receive time of the newest record
seen on the partition), not wall time, so a replay of old input dedups exactly
as the first run did.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass

__all__ = ["Sighting", "Verdict", "body_digest", "is_expired", "judge"]

_FORMAT = struct.Struct(">iq16sqq")


class Verdict(enum.Enum):
    NEW = "new"
    REPLAY = "replay"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


def body_digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Sighting:
    """Where and when a key was first seen (44 bytes packed)."""

    partition: int
    offset: int
    digest: bytes
    provider_time_ms: int
    seen_ms: int

    def pack(self) -> bytes:
        return _FORMAT.pack(self.partition, self.offset, self.digest, self.provider_time_ms, self.seen_ms)

    @classmethod
    def unpack(cls, data: bytes) -> Sighting:
        return cls(*_FORMAT.unpack(data))


def judge(existing: Sighting | None, partition: int, offset: int, digest: bytes) -> Verdict:
    if existing is None:
        return Verdict.NEW
    if existing.partition == partition and existing.offset == offset:
        return Verdict.REPLAY
    if existing.digest != digest:
        return Verdict.CONFLICT
    return Verdict.DUPLICATE


def is_expired(sighting: Sighting, watermark_ms: int, ttl_s: int) -> bool:
    """True once the partition's event time has moved `ttl_s` past the first sighting."""
    return sighting.seen_ms < watermark_ms - ttl_s * 1000
