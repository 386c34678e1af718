"""The worker consumer's fetch wait: short on both brokers (Faust hard-codes 1,500 ms and offers no setting).

On the embedded broker every Fetch waits out its whole max wait (quirk 8). On Apache Kafka a Fetch returns as
soon as a partition in it has records, but aiokafka leaves a partition whose fetched records are still
buffered out of the next Fetch, and sends one Fetch per broker at a time: once every raw partition has records
buffered, the next Fetch names only the (empty) state-input partitions, the broker holds it for the whole
max wait, and the raw records arriving meanwhile wait with it. With 1,500 ms that cycle sustains itself, and
end to end sat ~1.5 s behind for whole runs (3 of 5 runs of one bench-e2e series, quoted in the README). The wait is
`paystream.core.broker.worker_fetch_max_wait_ms`; it is set per app through Faust's transport `Consumer`
class (no Faust class is patched).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

__all__ = ["use_worker_fetch_wait"]


def use_worker_fetch_wait(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Give `app`'s worker consumer `fetch_max_wait_ms` (before its consumer is created; after
    `streams.rebalance.use_snapshot_fetches`, whose consumer class this extends and which refuses to run after it)."""
    base: Any = app.transport.Consumer

    class ShortWaitConsumerThread(AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by AIOKafkaConsumer.start() for its Fetcher
            return consumer

    class ShortWaitConsumer(base):  # type: ignore[misc]
        def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
            return ShortWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)

    # log as Faust's own services do (mode names a subclass's logger after its module)
    ShortWaitConsumerThread.logger = AIOKafkaConsumerThread.logger
    ShortWaitConsumer.logger = base.logger
    app.transport.Consumer = ShortWaitConsumer  # type: ignore[misc]  # a ClassVar in Faust: set for this app
