"""Broker failover on Apache Kafka (issue 15): kill -9 the busiest of three brokers under load.

Three KRaft brokers (every topic replication factor 3, `min.insync.replicas=2`), the real ingress
(its default librdkafka producer, idempotent on Apache Kafka), one worker and the sink on SQLite
as processes. A provider-like load (every event posted 3-5 times, anything not answered 2xx retried
with backoff) runs while the broker that leads the most partitions is killed with SIGKILL, and goes
on until the cluster has re-elected; the killed broker is then started again, and once it is back
in every in-sync replica set a preferred-leader election hands its partitions back to it, so
the processes must follow leadership a second time, now to the restarted broker. A second load
runs after that.

An admin client samples the metadata every 100 ms, so the window in which the cluster itself could
not take an acks=all write is measured apart from the ingress (see `tests/reliability/leaders.py`).

Proven: every event the ingress answered 200 is exactly once in `payment_events` and exactly once
on payments.events.v1, nothing else is there; no answer other than 200 and 503; every 503 carries
Retry-After and belongs to a request that was in flight inside the window (sent before the
cluster was writable again, answered after the kill); after the window every request is answered
200, through the restart and the leader move; no process restarted. The publish bound is 2 s, shorter
than the window, so the 503 path is taken (the test checks it was). Figures go to
test-artifacts/failover.json and docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import ElectionType, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource  # confluent_kafka.admin re-exports it untyped

from paystream.core.broker import free_port
from paystream.core.topic_reader import read_to_end
from schemas.serde import payment_event_serde
from schemas.topics import TopicCatalog, ensure_topics
from tests.fixtures.apache_kafka import ApacheKafka, broker_env
from tests.reliability.harness import Answer, Load, Proc, wait_until
from tests.reliability.leaders import LeaderWatch, Sample, watching
from tests.reliability.test_faults import stories

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.children_unmeasured, pytest.mark.timeout(300)]

SECRET = "whsec_failover"
PARTITIONS = 4
MIN_ISR = 2
KAFKA_DEFAULT_LIVENESS = {"broker.session.timeout.ms": "9000", "broker.heartbeat.interval.ms": "2000"}
"""Apache Kafka's defaults (the fixture shortens them): a dead broker is fenced, and its partitions
re-elected, about 9 s after its last heartbeat, longer than the ingress's default 5 s publish bound."""
RATE = 25.0
STORIES_DURING, STORIES_AFTER = 30, 8
KILL_AFTER_S = 3.0
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def processes(cluster: ApacheKafka, catalog: TopicCatalog, sink_url: str, tmp_path: Path) -> dict[str, Proc]:
    base = {**{k: v for k, v in os.environ.items() if not k.startswith("PAYSTREAM_")},
            "PAYSTREAM_KAFKA_BOOTSTRAP": cluster.bootstrap, **broker_env(embedded=False),
            "PAYSTREAM_TOPIC_PREFIX": catalog.prefix, "PAYSTREAM_PARTITIONS": str(catalog.partitions),
            "PAYSTREAM_REPLICATION_FACTOR": "3", "PAYSTREAM_STRIPE_WEBHOOK_SECRETS": SECRET,
            "PAYSTREAM_SINK_URL": sink_url, "PAYSTREAM_LOG_FORMAT": "json",
            "PAYSTREAM_STREAM_BATCH_SIZE": "200", "PAYSTREAM_STREAM_BATCH_MS": "20"}
    ports = {"ingress": "PAYSTREAM_INGRESS_PORT", "worker": "PAYSTREAM_WORKER_PORT",
             "sink": "PAYSTREAM_SINK_METRICS_PORT"}
    procs = {}
    for role, variable in ports.items():
        port = free_port()
        env = {**base, variable: str(port), "PAYSTREAM_DATA_DIR": str(tmp_path / role)}
        procs[role] = Proc(role, [role], env, port, tmp_path / f"{role}.log")
    return procs


def topic_settings(bootstrap: str, prefix: str) -> dict[str, tuple[int, str]]:
    """Every topic of this deployment (the catalog's and Faust's changelogs): (replicas, min.insync.replicas)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=10)
    names = sorted(name for name in metadata.topics if name.startswith(prefix))
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    configs = {r.name: f.result(timeout=10) for r, f in admin.describe_configs(resources).items()}
    return {name: (len(next(iter(metadata.topics[name].partitions.values())).replicas),
                   configs[name]["min.insync.replicas"].value) for name in names}


def elect_preferred_leaders(bootstrap: str) -> int:
    """A preferred-leader election on every partition; how many moved (the rest had their leader)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    results = admin.elect_leaders(ElectionType.PREFERRED, None).result(timeout=30)  # kwargs: SystemError in 2.16.1
    moved = 0
    for tp, error in results.items():
        if error is None:
            moved += 1
        elif not (isinstance(error, KafkaException) and error.args[0].code() == KafkaError.ELECTION_NOT_NEEDED):
            raise AssertionError(f"preferred election failed for {tp}: {error}")
    return moved


def all_on_preferred(sample: Sample) -> bool:
    return all(state.leader == state.replicas[0] and state.leader in sample.live
               for state in sample.partitions.values())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else 0.0


async def test_kill_9_of_the_busiest_broker_loses_nothing_and_doubles_nothing(
        kafka_cluster_factory: Callable[..., ApacheKafka], db_factory: Any, tmp_path: Path) -> None:
    rng = random.Random(15)
    cluster = kafka_cluster_factory(3, **KAFKA_DEFAULT_LIVENESS)
    catalog = TopicCatalog(prefix="failover.", partitions=PARTITIONS)
    await ensure_topics(cluster.bootstrap, catalog, replication_factor=3)
    db = db_factory("sqlite")
    procs = processes(cluster, catalog, db.url, tmp_path)
    watch = LeaderWatch(cluster.bootstrap, lambda: frozenset(n.node_id for n in cluster.nodes if n.running()))
    try:
        for proc in procs.values():
            proc.start(wait=False)
        for proc in procs.values():
            proc.wait_ready(120)
        settings = await asyncio.to_thread(topic_settings, cluster.bootstrap, catalog.prefix)
        assert catalog.raw in settings and any(name.endswith("-changelog") for name in settings), settings
        assert set(settings.values()) == {(3, str(MIN_ISR))}, settings

        during = Load([procs["ingress"].url], SECRET, rng, concurrency=16)
        after = Load([procs["ingress"].url], SECRET, rng, concurrency=16)
        deliveries_during, deliveries_after = stories(STORIES_DURING, rng), stories(STORIES_AFTER, rng)
        timeline: dict[str, float] = {}
        victim_figures: dict[str, int] = {}

        async def faults() -> None:
            await watch.wait_for(lambda s: not s.unwritable(s.topics), 30, "a fully writable cluster")
            await asyncio.sleep(max(0.0, timeline["load"] + KILL_AFTER_S - time.monotonic()))
            before = watch.latest
            victim = max(cluster.nodes, key=lambda n: (before.led_by(n.node_id, [catalog.raw]),
                                                       before.led_by(n.node_id)))
            victim_figures.update(node=victim.node_id, raw_partitions_led=before.led_by(victim.node_id, [catalog.raw]),
                                  partitions_led=before.led_by(victim.node_id))
            timeline["kill"] = time.monotonic()
            victim.kill()
            await watch.wait_for(lambda s: victim.node_id not in s.live and not s.unwritable(s.topics), 60,
                                 "every partition writable without the killed broker")
            timeline["writable"] = time.monotonic()
            await asyncio.sleep(0.5)
            timeline["restart"] = time.monotonic()
            await asyncio.to_thread(cluster.restart, victim)
            timeline["restarted"] = time.monotonic()
            await watch.wait_for(lambda s: all(victim.node_id in st.isr for st in s.partitions.values()
                                               if victim.node_id in st.replicas), 60,
                                 "the restarted broker back in every in-sync replica set")
            timeline["in_sync"] = time.monotonic()
            victim_figures["moved_back"] = await asyncio.to_thread(elect_preferred_leaders, cluster.bootstrap)
            await watch.wait_for(all_on_preferred, 30, "every partition on its preferred leader")
            timeline["moved_back"] = time.monotonic()

        async with watching(watch):
            timeline["load"] = time.monotonic()
            await asyncio.gather(during.run(during.plan(deliveries_during), RATE), faults())
            timeline["load_after"] = time.monotonic()
            await after.run(after.plan(deliveries_after), RATE)
            timeline["load_end"] = time.monotonic()

        answers: list[Answer] = during.answers + after.answers
        acked = during.acked | after.acked
        expected_keys = {f"stripe:{event_id}" for event_id in acked}

        def settled() -> bool:
            return bool(db.count("payment_events") >= len(acked))

        await wait_until(settled, 90, "every acknowledged event in payment_events")
        rows = {r[0] for r in db.rows("SELECT event_key FROM payment_events")}
        copies: Counter[str] = Counter()
        async for record in read_to_end(cluster.bootstrap, catalog.events, embedded=False):
            copies[payment_event_serde().decode(record.value).event_key] += 1

        kill = timeline["kill"]
        raw_window = watch.window([catalog.raw], after=kill)
        raw_writable = watch.writable_again([catalog.raw], after=kill)
        statuses = Counter(a.status for a in answers)
        refusals = [a for a in answers if a.status != 200]
        outside = [a for a in refusals if not (a.finished >= kill and a.started <= raw_writable)]
        latencies = [a.finished - a.started for a in answers if a.status == 200 and a.finished < kill]
        figures = {
            "events_acknowledged": len(acked), "requests": len(answers), "status_200": statuses[200],
            "status_503": statuses[503], "other_answers": sum(n for s, n in statuses.items() if s not in (200, 503)),
            "refused_outside_window": len(outside), "killed_broker": victim_figures,
            "window_s": round(raw_writable - kill, 2),
            "cluster_writable_s": round(timeline["writable"] - kill, 2),
            "refused_s_after_kill": sorted({round(a.finished - kill, 1) for a in refusals}),
            "no_answer": [(round(a.started - kill, 2), round(a.finished - kill, 2), a.error)
                          for a in answers if a.status == 0],
            "last_refused_request_sent_s": round(max((a.started for a in refusals), default=kill) - kill, 2),
            "latency_before_kill_s": {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                                      "max": percentile(latencies, 1.0)},
            "restart_s": round(timeline["restarted"] - timeline["restart"], 2),
            "timeline_s": {name: round(at - timeline["load"], 2) for name, at in timeline.items()},
            "rows": len(rows), "events_v1_records": sum(copies.values()),
            "lost": len(expected_keys - rows), "unexpected_rows": len(rows - expected_keys),
            "doubled_on_events_v1": sum(1 for n in copies.values() if n > 1),
            "gave_up": len(during.gave_up | after.gave_up),
            "metadata_samples": len(watch.samples), "metadata_errors": watch.errors,
        }
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "failover.json").write_text(json.dumps(figures, indent=2))
        print("\nbroker failover:", json.dumps(figures))

        for proc in procs.values():
            assert proc.alive() and proc.starts == 1, f"{proc.name} did not survive:\n{proc.tail()}"
        assert not (during.gave_up | after.gave_up), figures
        assert set(statuses) <= {200, 503}, statuses
        assert all(a.retry_after is not None and int(a.retry_after) > 0 for a in refusals)
        assert raw_window is not None, "the admin client never saw the raw topic unwritable"
        assert not outside, f"503s outside the window {kill:.2f}-{raw_writable:.2f}: {outside[:5]}"
        assert refusals, "the publish bound is shorter than the window: some requests must have been refused"
        assert watch.latest.led_by(victim_figures["node"], [catalog.raw]) > 0, "the restarted broker leads again"
        assert rows == expected_keys, figures
        assert set(copies) == expected_keys and set(copies.values()) == {1}, figures
    finally:
        for proc in procs.values():
            proc.stop()
