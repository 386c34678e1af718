"""The applied-input mark: which state-input records a payment-state partition already reflects.

The state stage stores, under `APPLIED_KEY` in each payment-state partition, the offset of the last
payments.state-input.v1 record of the same partition it applied, in the same RocksDB write batch as
the states that record changed and last in the changelog after them. So the local copy, and any copy
restored from the changelog, says exactly which input it covers: a record at or below the mark is a
replay (the worker stopped before its input offset was committed) and re-sends what it wrote, since
the first sends may never have been acknowledged.
"""

from __future__ import annotations

import struct

__all__ = ["APPLIED_KEY", "pack_offset", "unpack_offset"]

APPLIED_KEY = b"\x00applied:state-input"
"""Never a payment key (`provider:id`) nor an alias entry (`\\x00alias:`)."""

_OFFSET = struct.Struct(">q")


def pack_offset(offset: int) -> bytes:
    return _OFFSET.pack(offset)


def unpack_offset(raw: bytes | None) -> int:
    """The stored mark, or -1 when the partition has applied nothing yet."""
    return -1 if raw is None else int(_OFFSET.unpack(raw)[0])
