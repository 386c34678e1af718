"""Broker incarnations (quirk 4): detect local state built against another broker.

The embedded broker keeps nothing across restarts, so RocksDB tables and sink
offsets from an earlier run describe topics that no longer exist. Each broker
start gets a fresh cluster id; components store the id beside their state and
reset that state, with a clear log line, when it changes. A real Kafka cluster
keeps its cluster id, so nothing is ever reset there.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiokafka import AIOKafkaClient
from aiokafka.protocol.metadata import MetadataRequest

__all__ = ["IncarnationMarker", "fetch_cluster_id"]

log = logging.getLogger("paystream.broker.incarnation")


async def fetch_cluster_id(bootstrap: str, *, timeout_ms: int = 10_000) -> str:
    """The cluster id from a Metadata response (v2+)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    try:  # a bootstrap that fails half-way must still close what it opened
        await client.bootstrap()
        node = client.get_random_node()
        response = await client.send(node, MetadataRequest(topics=[]))
        cluster_id = getattr(response, "cluster_id", None)
        if not cluster_id:
            raise RuntimeError("broker did not report a cluster id (Metadata v2+ required)")
        return str(cluster_id)
    finally:
        await client.close()


class IncarnationMarker:
    """A file beside some local state that names the broker it was built against."""

    def __init__(self, state_dir: Path, name: str = ".broker-incarnation") -> None:
        self.path = state_dir / name

    def read(self) -> str | None:
        try:
            return self.path.read_text("utf-8").strip() or None
        except FileNotFoundError:
            return None

    def write(self, cluster_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(cluster_id, "utf-8")
        tmp.replace(self.path)

    def is_stale(self, cluster_id: str) -> bool:
        """True when state exists from a different broker incarnation."""
        previous = self.read()
        return previous is not None and previous != cluster_id
