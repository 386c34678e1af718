"""`paystream dlq list` and `replay` as real subprocesses against a real worker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from paystream.dev.scenarios import stripe_payment_intent
from schemas.dlq import dlq_headers
from schemas.serde import envelope_serde, payment_event_serde
from tests.fixtures.kafka import drain
from tests.fixtures.streams import EnvelopeFactory, WorkerProcess


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "paystream", "dlq", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


async def test_list_and_replay_after_a_fix(worker_factory: Any, stream_env: dict[str, str],
                                           envelope_factory: EnvelopeFactory, topics: Any,
                                           producer_factory: Any, consumer_factory: Any) -> None:
    worker: WorkerProcess = worker_factory()
    # a record that failed before some fix: a valid envelope, dead-lettered by an older worker
    envelope = envelope_factory(stripe_payment_intent("payment_intent.created", "pi_dlq", amount=700,
                                                      currency="USD", created=1_790_000_000).body)
    producer = await producer_factory()
    headers = dlq_headers(original_topic=topics.raw, original_partition=1, original_offset=41, stage="normalize",
                          error=ValueError("unknown currency"), reason="unknown_currency")
    await producer.send_and_wait(topics.dlq, envelope_serde().encode(envelope), key=envelope.key.encode(),
                                 headers=headers)
    await producer.send_and_wait(topics.dlq, b"\x00junk", key=b"stripe:evt_other",
                                 headers=dlq_headers(original_topic=topics.raw, original_partition=0,
                                                     original_offset=7, stage="decode", error=ValueError("junk")))
    listed = cli(worker.env, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {(r["stage"], r["key"]) for r in rows} == {("normalize", envelope.key), ("decode", "stripe:evt_other")}
    assert all("payload" not in r for r in rows)
    only = cli(worker.env, "list", "--stage", "normalize", "--json")
    assert len(only.stdout.splitlines()) == 1
    dry = cli(worker.env, "replay", "--stage", "normalize", "--dry-run")
    assert dry.returncode == 0 and f"1 to {topics.raw}" in dry.stderr
    for _ in range(2):  # replaying twice must still count once
        done = cli(worker.env, "replay", "--stage", "normalize", "--yes")
        assert done.returncode == 0 and "replayed 1" in done.stderr, done.stderr
    events = await drain(await consumer_factory(topics.events), expected=1, idle_s=3, timeout_s=60)
    assert [payment_event_serde().decode(r.value).event_key for r in events] == [envelope.key]
    for _ in range(100):  # the second replay is dropped as a duplicate
        if worker.get("/dedup/stats").json()["duplicates"] == 1:
            break
        await asyncio.sleep(0.2)
    stats = worker.get("/dedup/stats").json()
    assert (stats["new"], stats["duplicates"]) == (1, 1)
