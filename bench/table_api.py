"""`make bench-table-api`: what keeping table state through Faust's public API would cost (issue 16).

The worker keeps its tables (dedup, payment state, reconciliation) in RocksDB with a changelog, and
writes them in batches (`streams/partitioned.py`). Issue 16 asked to drop Faust's store internals and to
choose *by measurement* between Faust's public table API and a store the worker owns (RocksDB + its own
compacted changelog on the producer); the choice made is in docs/architecture.md ("Table state").
This measures the three on the same records, broker and machine, each as its own Faust worker process
on fresh topics:

- `public`: Faust's public API, one event at a time (`table.get(key)`, `table[key] = value`): a
  table write needs the current event (it picks the changelog partition), so no batching;
- `internal`: what the worker does, `take_events` batches read and written through `PartitionedTable`,
  changelog records sent per batch (until 2026-12-06 into Faust's RocksDB driver through its private
  `_db_for_partition`; since then into the worker's own store, `streams/store.py`, plugged into Faust);
- `owned`: the same batches against RocksDB databases the app opens itself (one per partition) and
  a compacted changelog topic it declares itself: no Faust table at all.

Every variant reads and rewrites one ~200-byte value per event (dedup-like), and the clock stops only
when every changelog record is acknowledged. Figures are events/s and process CPU per event, the worst
of `BENCH_RUNS` (default 3) interleaved runs per variant and broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import brokers
from bench.faust_app import run_faust_app
from bench.machine import interrupt_on_sigterm, write_report
from paystream.core.broker import producer_options

N = int(os.environ.get("BENCH_EVENTS", "20000"))
KEYS = int(os.environ.get("BENCH_KEYS", "5000"))
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "8"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
VARIANTS = tuple(os.environ.get("BENCH_VARIANTS", "public,internal,owned").split(","))
TIMEOUT_S = 600

APP = '''
import asyncio, json, os, time
import faust
from paystream.core.broker.compat import faust_broker_options
from streams.compat import install_embedded_broker_compat
from streams.partitioned import PartitionedTable
from streams.store import STORE_URL, WRITE_BUFFER_BYTES, WRITE_BUFFERS, TARGET_FILE_BYTES, BLOCK_CACHE_BYTES
# Faust's own RocksDB driver (the public variant), sized as the worker's store sizes its databases
FAUST_SIZES = {"driver": "rocksdict", "write_buffer_size": WRITE_BUFFER_BYTES, "max_write_buffer_number": WRITE_BUFFERS,
               "target_file_size_base": TARGET_FILE_BYTES, "block_cache_size": BLOCK_CACHE_BYTES,
               "block_cache_compressed_size": 0}

EMBEDDED = os.environ["EMBEDDED"] == "true"
if EMBEDDED:
    install_embedded_broker_compat()
VARIANT, N, P = os.environ["VARIANT"], int(os.environ["N"]), int(os.environ["P"])
app = faust.App("bench-table-%s" % os.environ["RUN"], broker="kafka://" + os.environ["BS"],
                store=STORE_URL if VARIANT == "internal" else "rocksdb://",
                datadir=os.environ["DATA"], key_serializer="raw", value_serializer="raw", web_enabled=False,
                consumer_auto_offset_reset="earliest", producer_linger=0.001, topic_partitions=P,
                table_standby_replicas=0, **faust_broker_options(embedded=EMBEDDED))
source = app.topic(os.environ["SRC"], key_type=bytes, value_type=bytes, partitions=P)
clock = {"n": 0, "t": None, "cpu": None}


def started() -> None:
    if clock["t"] is None:
        clock["t"], clock["cpu"] = time.perf_counter(), time.process_time()


def finish() -> None:
    seconds, cpu = time.perf_counter() - clock["t"], time.process_time() - clock["cpu"]
    with open(os.environ["OUT"], "w") as out:
        json.dump({"events_per_s": N / seconds, "cpu_us_per_event": cpu / N * 1e6}, out)


def next_value(old, key):
    count = int(old[:12]) + 1 if old else 1
    return b"%012d" % count + key.ljust(188, b".")


def batch_writes(events, read):
    """Per partition, each key's next value after this batch (read(partition, key) gives the stored one)."""
    writes = {}
    for event in events:
        part = writes.setdefault(event.message.partition, {})
        key = event.key
        part[key] = next_value(part.get(key) or read(event.message.partition, key), key)
    return writes


if VARIANT == "public":
    table = app.Table("bench", key_type=bytes, value_type=bytes, partitions=P, options=FAUST_SIZES)

    @app.agent(source)
    async def run(stream):
        async for event in stream.events():
            started()
            table[event.key] = next_value(table.get(event.key), event.key)
            clock["n"] += 1
            if clock["n"] == N:
                await app.producer.flush()  # the changelog records Faust buffered are acknowledged
                finish()

elif VARIANT == "internal":
    table = PartitionedTable(app, app.Table("bench", key_type=bytes, value_type=bytes, partitions=P))

    @app.agent(source)
    async def run(stream):
        async for events in stream.take_events(1000, within=0.05):
            started()
            writes = batch_writes(events, table.get)
            futures = []
            for partition, items in writes.items():
                futures.extend(await table.write(partition, items))
            await asyncio.gather(*futures)
            clock["n"] += len(events)
            if clock["n"] >= N:
                finish()

else:
    from rocksdict import Options, Rdict, WriteBatch
    changelog = app.topic("bench-owned-changelog-%s" % os.environ["RUN"], key_type=bytes, value_type=bytes,
                          partitions=P, compacting=True, internal=True)
    dbs = {}

    def db(partition):
        if partition not in dbs:
            options = Options(raw_mode=True)
            options.create_if_missing(True)
            options.set_write_buffer_size(2 * 1024 * 1024)
            options.set_max_write_buffer_number(2)
            dbs[partition] = Rdict(os.path.join(os.environ["DATA"], "owned-%d" % partition), options)
        return dbs[partition]

    @app.agent(source)
    async def run(stream):
        await changelog.maybe_declare()
        async for events in stream.take_events(1000, within=0.05):
            started()
            writes = batch_writes(events, lambda partition, key: db(partition).get(key))
            futures = []
            for partition, items in writes.items():
                batch = WriteBatch(raw_mode=True)
                for key, value in items.items():
                    batch.put(key, value)
                db(partition).write(batch)
                for key, value in items.items():
                    futures.append(await app.producer.send(changelog.get_topic_name(), key, value, partition,
                                                           None, None))
            await asyncio.gather(*futures)
            clock["n"] += len(events)
            if clock["n"] >= N:
                finish()
'''


async def create_topic(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()


async def publish(bootstrap: str, topic: str, embedded: bool) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=262144,
                                **producer_options(embedded=embedded, linger_ms=5))
    await producer.start()
    try:
        futures = [await producer.send(topic, b"x" * 150, key=b"key-%06d" % (i % KEYS)) for i in range(N)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def one_run(bootstrap: str, variant: str, embedded: bool, run: str) -> dict[str, float]:
    source = f"bench-table-src-{run}"
    asyncio.run(create_topic(bootstrap, source))
    asyncio.run(publish(bootstrap, source, embedded))
    env = {**os.environ, "BS": bootstrap, "SRC": source, "N": str(N), "P": str(PARTITIONS), "RUN": run,
           "VARIANT": variant, "EMBEDDED": str(embedded).lower()}
    result: dict[str, float] = json.loads(run_faust_app(APP, env, timeout_s=TIMEOUT_S))
    return result


def measure(kind: str) -> dict[str, list[dict[str, float]]]:
    embedded = brokers.is_embedded(kind)
    runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    with brokers.running(kind) as started:
        bootstrap = started.bootstrap
        for run_no in range(RUNS):
            for variant in VARIANTS:  # interleaved: a slow spell hits every variant alike
                result = one_run(bootstrap, variant, embedded, f"{variant}-{run_no}-{time.time_ns()}")
                print(kind, variant, run_no + 1, result, flush=True)
                runs[variant].append(result)
    return runs


def worst(results: list[dict[str, float]]) -> dict[str, float]:
    return {"events_per_s": min(r["events_per_s"] for r in results),
            "cpu_us_per_event": max(r["cpu_us_per_event"] for r in results)}


def main() -> None:
    kinds = brokers.selected()
    measured = {kind: measure(kind) for kind in kinds}
    rows = []
    for variant in VARIANTS:
        cells = []
        for kind in kinds:
            w = worst(measured[kind][variant])
            cells.append(f"{w['events_per_s']:.0f} events/s, {w['cpu_us_per_event']:.0f} µs CPU/event")
        rows.append(f"| `{variant}` | " + " | ".join(cells) + " |")
    header = "| variant | " + " | ".join(brokers.LABELS[k] for k in kinds) + " |"
    rule = "|---|" + "---|" * len(kinds)
    table = "\n".join([header, rule, *rows])
    print(table)
    path = write_report("table_api", "Table state: Faust's public API against batched writes (`make bench-table-api`)",
                        f"""
{N:,} records ({KEYS:,} keys, ~150-byte values) on {PARTITIONS} partitions, one Faust worker process per run
on a fresh topic set; each event reads its key's ~200-byte value and writes the next one (dedup-like), and
the clock stops when every changelog record is acknowledged. Variants (see `bench/table_api.py`):
`public` = Faust's `table.get` / `table[key] = value` per event; `internal` = the worker's path,
`take_events` batches through `PartitionedTable` into the worker's own store (`streams/store.py`, Faust's
store internals before 2026-12-06); `owned` = the same batches
against RocksDB the app opens itself and a changelog topic it declares itself (no Faust table). Each cell is
the worst of {RUNS} interleaved runs (lowest events/s, highest CPU per event), same broker, same invocation.

{table}

```json
{json.dumps(measured, indent=2)}
```
""")
    print(f"report: {path}")


if __name__ == "__main__":
    interrupt_on_sigterm()
    main()
