"""`python bench/streams_guarantee.py`: the full worker path on Apache Kafka, at-least-once vs exactly_once.

A reduced `bench/streams.py`: one single-node Apache Kafka (`tests/fixtures/apache_kafka.py`), and per run
a fresh topic set with `BENCH_EVENTS` (default 10,000) pre-published raw envelopes, then `paystream worker`
(reconciliation off, as in streams.md's full-path figure) with PAYSTREAM_PROCESSING_GUARANTEE set. Runs
alternate between the two guarantees, `BENCH_RUNS` (default 2) each; prints every run and the worst per
guarantee as a Markdown table for `bench/reports/streams.md`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe
from bench.streams import PARTITIONS, envelopes, publish, run_worker
from schemas.topics import TopicCatalog, ensure_topics
from tests.fixtures.apache_kafka import ApacheKafka

N = int(os.environ.get("BENCH_EVENTS", "10000"))
RUNS = int(os.environ.get("BENCH_RUNS", "2"))
GUARANTEES = ("at_least_once", "exactly_once")


def main() -> None:
    items = envelopes(N)
    results: dict[str, list[dict[str, float]]] = {g: [] for g in GUARANTEES}
    with tempfile.TemporaryDirectory() as workdir:
        node = ApacheKafka(Path(workdir), nodes=1).start()
        try:
            for run in range(RUNS):
                for guarantee in GUARANTEES:
                    catalog = TopicCatalog(prefix=f"bench{run}{guarantee[0]}.", partitions=PARTITIONS)
                    asyncio.run(ensure_topics(node.bootstrap, catalog))
                    asyncio.run(publish(node.bootstrap, catalog.raw, items))
                    result = run_worker(node.bootstrap, catalog.prefix, N, {
                        "PAYSTREAM_EMBEDDED_BROKER": "false", "PAYSTREAM_RECONCILIATION": "false",
                        "PAYSTREAM_PROCESSING_GUARANTEE": guarantee})
                    results[guarantee].append(result)
                    print(f"run {run + 1} {guarantee:>13}: {result['events_per_s']:.0f} events/s "
                          f"({result['seconds']:.1f} s, {result['worker_cpu_us_per_event']:.0f} us CPU/event, "
                          f"peak RSS {result['peak_rss_mb']:.0f} MB)", flush=True)
        finally:
            node.stop()
    facts = describe()
    print(f"\n{facts['date']}, {facts['cpu']}, {facts['cores']} cores; {N} events, {PARTITIONS} partitions, "
          f"worst of {RUNS}\n")
    print("| guarantee | events/s (worst) | all runs | worker CPU us/event (worst run) |\n|---|---|---|---|")
    for guarantee, runs in results.items():
        worst = min(runs, key=lambda r: r["events_per_s"])
        print(f"| {guarantee} | {worst['events_per_s']:.0f} | "
              f"{', '.join(str(round(r['events_per_s'])) for r in runs)} | {worst['worker_cpu_us_per_event']:.0f} |")


if __name__ == "__main__":
    main()
