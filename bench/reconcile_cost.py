"""What reconciliation adds per provider event: CPU µs spent in its two stages.

Realistic Stripe/PayPal stories (checkout, refund, dispute; normalized by the real
normalizers) with a ledger entry for 90 % of the payments, in event-time order,
go through the real join and window stages in batches (as the worker's agents take
them), with real RocksDB tables whose changelog records, placements, ticks and
window records are sent by a real aiokafka producer (acks=all) to a private
embedded broker. The figure is process CPU time of both stages divided by the
number of provider events; the run without reconciliation does none of this work,
so this is what it adds. Not included: Faust handing each events.v1 message to one
more agent (the stages are fed directly), and the broker's own CPU (another process).

    .venv/bin/python bench/reconcile_cost.py [--events 20000] [--batch 1000] [--partitions 8] [--worker]

`--worker` also runs a real `paystream worker` (bench/streams.py's runner) on the same raw
envelopes with and without reconciliation and prints the worker CPU it adds per event.

`measure()` is what `bench/streams.py` can call (pass `bootstrap` to reuse its broker).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from rocksdict import Options, Rdict

from schemas.topics import partition_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import interrupt_on_sigterm
from paystream.core.broker import EmbeddedBroker, producer_options
from paystream.dev.scenarios import scenario
from schemas.records import LedgerEntry, PaymentEvent, WebhookEnvelope
from schemas.serde import ledger_serde, payment_event_serde, reconciliation_serde
from schemas.topics import TopicCatalog, ensure_topics
from streams.normalize import normalize
from streams.reconcile.aggregate import WindowAggregator
from streams.reconcile.join import PaymentJoin
from streams.reconcile.model import WindowSpec
from streams.store import write_batch

START = datetime(2026, 11, 2, tzinfo=UTC)


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[Any] = field(default_factory=list)


class Sender:
    """Faust's `producer.send` signature over aiokafka; keeps what went to the placements topic for stage 2."""

    def __init__(self, producer: AIOKafkaProducer, placements_topic: str, partitions: int) -> None:
        self.producer = producer
        self.placements_topic = placements_topic
        self.partitions = partitions
        self.pending: list[Message] = []
        self._offsets: dict[int, int] = {}

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any) -> Any:
        if topic == self.placements_topic:
            assert value is not None
            if partition is None:
                assert key is not None
                partition = partition_for(key, self.partitions)
            offset = self._offsets.get(partition, 0)
            self._offsets[partition] = offset + 1
            self.pending.append(Message(topic, partition, offset, key, value))
        return await self.producer.send(topic, value, key=key, partition=partition)

    def take(self) -> list[Message]:
        taken, self.pending = self.pending, []
        return taken


class RocksStore:
    """One RocksDB per partition plus changelog sends: what `PrefixTable` does inside Faust."""

    def __init__(self, root: Path, sender: Sender, changelog: str) -> None:
        self.root, self.sender, self.changelog = root, sender, changelog
        self.dbs: dict[int, Rdict] = {}

    def db(self, partition: int) -> Rdict:
        if partition not in self.dbs:
            options = Options(raw_mode=True)
            options.create_if_missing(True)
            self.dbs[partition] = Rdict(str(self.root / str(partition)), options=options)
        return self.dbs[partition]

    def get(self, partition: int, key: bytes) -> bytes | None:
        value: bytes | None = self.db(partition).get(key)
        return value

    async def write(self, partition: int, items: dict[bytes, bytes | None]) -> list[Any]:
        self.db(partition).write(write_batch(items))
        return [await self.sender.producer.send(self.changelog, value, key=key, partition=partition)
                for key, value in items.items()]

    def scan_prefix(self, partition: int, prefix: bytes, start: bytes | None = None
                    ) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self.db(partition).items(from_key=max(prefix, start or prefix)):
            if not key.startswith(prefix):
                break
            yield key, value

    def close(self) -> None:
        for db in self.dbs.values():
            db.close()


class NoLetters:
    async def send(self, message: Any, stage: str, error: BaseException, *, reason: str | None = None) -> Any:
        raise AssertionError(f"unexpected dead letter: {error}")


def workload(events: int, seed: int = 3) -> tuple[list[LedgerEntry], list[PaymentEvent]]:
    """Stories one every 2 s of event time; 90 % of payments in the ledger, 2 % of those with another amount."""
    rng = random.Random(seed)
    ledger: list[LedgerEntry] = []
    stream: list[PaymentEvent] = []
    n = 0
    while len(stream) < events:
        at = START + timedelta(seconds=2 * n)
        provider, currency = rng.choice(["stripe", "paypal"]), rng.choice(["EUR", "USD", "JPY"])
        amount = rng.randint(100, 50_000)
        name = rng.choices(["checkout", "refund", "dispute"], weights=[80, 15, 5])[0]
        payment_id = None
        for delivery in scenario(name, provider, start=at, rng=rng, amount=amount, currency=currency):
            envelope = WebhookEnvelope(envelope_id=str(uuid.uuid4()), provider=provider, source=provider,
                                       provider_event_id=delivery.event_id, event_type=delivery.event_type,
                                       received_at=at, verified_by="bench", body=delivery.body,
                                       content_type="application/json")
            event = normalize(envelope)
            payment_id = event.payment_id
            stream.append(event)
        if payment_id is not None and rng.random() < 0.9:
            expected = amount + (rng.choice([-1, 1]) * 100 if rng.random() < 0.02 else 0)
            ledger.append(LedgerEntry(payment_id=payment_id, provider=provider, amount_minor=expected,
                                      currency=currency, expected_at=at))
        n += 1
    stream.sort(key=lambda e: e.occurred_at)
    return ledger, stream[:events]


def as_messages(topic: str, records: list[Any], partitions: int, encode: Any) -> list[Message]:
    offsets: dict[int, int] = {}
    messages = []
    for record in records:
        key = record.payment_key.encode()
        partition = partition_for(key, partitions)
        offsets[partition] = offsets.get(partition, -1) + 1
        messages.append(Message(topic, partition, offsets[partition], key, encode(record)))
    return messages


@dataclass
class Cost:
    events: int
    ledger_entries: int
    cpu_s: float
    wall_s: float
    windows: int
    placements: int
    decode_s: float

    @property
    def decode_us_per_event(self) -> float:
        return self.decode_s / self.events * 1e6

    @property
    def us_per_event(self) -> float:
        return self.cpu_s / self.events * 1e6


async def measure(events: int = 20_000, batch: int = 1000, partitions: int = 8, bootstrap: str | None = None) -> Cost:
    broker = None
    if bootstrap is None:
        broker = await EmbeddedBroker(log_path=Path(tempfile.gettempdir()) / "bench-reconcile-tansu.log").start_async()
        bootstrap = broker.bootstrap
    root = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    catalog = TopicCatalog(prefix=f"bench{uuid.uuid4().hex[:8]}.", partitions=partitions)
    stores: list[RocksStore] = []
    try:
        await ensure_topics(bootstrap, catalog)
        internal = [f"{catalog.prefix}reconcile-{name}" for name in ("placements", "payments-changelog",
                                                                      "windows-changelog")]
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, partitions, 1) for name in internal])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **producer_options(embedded=broker is not None,
                                                                                   linger_ms=1))
        await producer.start()
        try:
            placements = f"{catalog.prefix}reconcile-placements"
            sender = Sender(producer, placements, partitions)
            spec = WindowSpec.from_seconds(3600, 600)
            join_store = RocksStore(root / "join", sender, f"{catalog.prefix}reconcile-payments-changelog")
            window_store = RocksStore(root / "windows", sender, f"{catalog.prefix}reconcile-windows-changelog")
            stores += [join_store, window_store]
            join = PaymentJoin(store=join_store, producer=lambda: sender, events_topic=catalog.events,
                               ledger_topic=catalog.ledger, placements_topic=placements,
                               placement_partitions=partitions, spec=spec, event_serde=payment_event_serde(),
                               ledger_serde=ledger_serde(), dead_letters=NoLetters())
            windows = WindowAggregator(store=window_store, producer=lambda: sender, output_topic=catalog.reconciliation,
                                       sources=partitions, spec=spec, serde=reconciliation_serde(),
                                       dead_letters=NoLetters())
            ledger, stream = workload(events)
            ledger_messages = as_messages(catalog.ledger, ledger, partitions, ledger_serde().encode)
            event_messages = as_messages(catalog.events, stream, partitions, payment_event_serde().encode)
            for start in range(0, len(ledger_messages), batch):
                await join.process(ledger_messages[start:start + batch])
                await windows.process(sender.take())
            cpu, wall = time.process_time(), time.perf_counter()
            for start in range(0, len(event_messages), batch):
                await join.process(event_messages[start:start + batch])
                await windows.process(sender.take())
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            serde, decode = payment_event_serde(), time.process_time()
            for message in event_messages:
                serde.decode(message.value)
            decode = time.process_time() - decode
            return Cost(len(event_messages), len(ledger), cpu, wall, windows.emitted, join.stats.placements, decode)
        finally:
            await producer.stop()
    finally:
        for store in stores:
            store.close()
        shutil.rmtree(root, ignore_errors=True)
        if broker is not None:
            broker.stop()


def worker_with_and_without(events: int = 20_000) -> dict[str, dict[str, float]]:
    """The same raw envelopes through a real `paystream worker`, with reconciliation and without it.

    Uses `bench/streams.py`'s workload and worker runner; "without" starts the worker with
    `register_reconciliation` replaced by a no-op (a `sitecustomize` on PYTHONPATH).
    """
    from bench import streams

    results: dict[str, dict[str, float]] = {}
    off = Path(tempfile.mkdtemp(prefix="bench-reconcile-off-"))
    (off / "sitecustomize.py").write_text("import streams.reconcile as r\nr.register_reconciliation = lambda w: None\n")
    try:
        with EmbeddedBroker() as broker:
            items = streams.envelopes(events)
            for label, extra in (("without", {"PYTHONPATH": str(off)}), ("with", {})):
                catalog = TopicCatalog(prefix=f"bench{label}.", partitions=streams.PARTITIONS)
                asyncio.run(ensure_topics(broker.bootstrap, catalog))
                asyncio.run(streams.publish(broker.bootstrap, catalog.raw, items))
                results[label] = streams.run_worker(broker.bootstrap, catalog.prefix, events, extra)
    finally:
        shutil.rmtree(off, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--worker", action="store_true",
                        help="also run a real worker with and without reconciliation (bench/streams.py's runner)")
    args = parser.parse_args()
    if args.worker:
        runs = worker_with_and_without(args.events)
        for label, run in runs.items():
            print(f"worker {label} reconciliation: {run['events_per_s']:.0f} raw events/s, "
                  f"{run['worker_cpu_us_per_event']:.0f} µs CPU per event")
        added = runs["with"]["worker_cpu_us_per_event"] - runs["without"]["worker_cpu_us_per_event"]
        print(f"worker CPU added by reconciliation: {added:.0f} µs per event")
    cost = asyncio.run(measure(args.events, args.batch, args.partitions))
    print(f"{cost.events} provider events, {cost.ledger_entries} ledger entries, {cost.placements} placements, "
          f"{cost.windows} window records; {cost.wall_s:.2f} s wall")
    print(f"reconciliation cost: {cost.us_per_event:.1f} µs per event "
          f"(of which decoding the PaymentEvent once more: {cost.decode_us_per_event:.1f} µs)")


if __name__ == "__main__":
    interrupt_on_sigterm()
    main()
