"""The worker's Kafka producer: idempotent on Apache Kafka, also outside transactions.

Faust turns idempotence on only inside transactions (`processing_guarantee="exactly_once"`).
Under at-least-once its aiokafka producer retries a batch whose leader died before answering,
and the new leader may already hold that batch (replicated before the kill): the record is
then on payments.events.v1 twice. Measured: a kill -9 of one of three brokers under load put an
event on payments.events.v1 twice from one raw record (tests/reliability/test_broker_failover.py).
With idempotence the broker recognises the retried batch by its producer id and sequence and
stores it once.

Whether to use it is the ground's decision (`paystream.core.broker.producer_options`): on for
Apache Kafka, off on the embedded broker, whose aiokafka idempotence does not work (quirk 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Producer

from paystream.core.broker import producer_options

__all__ = ["IdempotentProducer", "use_idempotent_producer"]


class IdempotentProducer(Producer):
    """Faust's aiokafka producer with `enable_idempotence` (and so acks=all) always on."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


def use_idempotent_producer(app: faust.App, *, embedded: bool) -> bool:
    """Make `app`'s producers (also its transactional ones) idempotent where the broker supports it.

    Faust builds its producer lazily from `app.transport.Producer`; this sets it on the app's own
    transport only (no class is patched). Returns whether it did."""
    if not producer_options(embedded=embedded)["enable_idempotence"]:
        return False
    app.transport.Producer = IdempotentProducer  # type: ignore[misc]  # a ClassVar in Faust: set for this app only
    return True
