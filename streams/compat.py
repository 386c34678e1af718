"""Embedded-broker handling inside Faust (DESIGN.md quirks 2 and 4).

Quirk 2: Faust asks for table recovery end offsets with ListOffsets, which the
embedded broker answers wrongly for multi-record batches. The consumer thread's
`_highwaters` is replaced by one that reads the high watermark from a Fetch
response through the same aiokafka client (`paystream.core.broker.compat`).

The worker consumer's short fetch wait (quirk 8 here, and a stall of its own on
Apache Kafka) is no longer a patch: every worker app gets it (`streams/fetch_wait.py`).

Quirk 4: the embedded broker forgets everything on restart; local RocksDB tables
built against an earlier incarnation would make Faust crash ("persisted offset
higher than highwater") or skip data. The worker stores the broker's cluster id
beside its tables and wipes them, with one clear log line, when it changes.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from paystream.core.broker import IncarnationMarker, fetch_high_watermarks

__all__ = ["embedded_broker_compat_installed", "install_embedded_broker_compat", "reset_stale_state"]

log = logging.getLogger("paystream.streams.compat")
_installed = False


def install_embedded_broker_compat() -> None:
    """Patch Faust's aiokafka consumer thread: end offsets from Fetch high watermarks (quirk 2).
    Idempotent; only ever called for the embedded broker."""
    global _installed  # noqa: PLW0603 - a process-wide, once-only patch
    if _installed:
        return
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    async def _highwaters(self: Any, partitions: Iterable[Any]) -> Mapping[Any, int]:
        consumer = self._ensure_consumer()
        partitions = list(partitions)
        listed = await consumer.end_offsets(partitions)
        return await fetch_high_watermarks(consumer, partitions, listed)

    AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]
    _installed = True


def embedded_broker_compat_installed() -> bool:
    """Whether this process runs Faust with the `_highwaters` patch (only ever with the embedded broker)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    return getattr(AIOKafkaConsumerThread._highwaters, "__module__", "") == __name__


def reset_stale_state(datadir: Path, cluster_id: str) -> bool:
    """Wipe `datadir` when it was built against another broker incarnation; returns True if it did."""
    marker = IncarnationMarker(datadir.parent, f".{datadir.name}.broker-incarnation")
    stale = marker.is_stale(cluster_id) or (marker.read() is None and datadir.exists() and any(datadir.iterdir()))
    if stale:
        log.warning("worker state was built against another broker incarnation; resetting it",
                    extra={"datadir": str(datadir), "previous_cluster_id": marker.read(), "cluster_id": cluster_id})
        shutil.rmtree(datadir, ignore_errors=True)
    marker.write(cluster_id)
    return stale
