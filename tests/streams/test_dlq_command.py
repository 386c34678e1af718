"""`paystream dlq list` and `replay` as real subprocesses against a real worker: raw-stage and state-stage dead
letters, and a replay that fails again counting another attempt."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from paystream.dev.scenarios import stripe_payment_intent
from schemas.dlq import dlq_headers, parse_dlq_headers
from schemas.serde import envelope_serde, payment_event_serde
from streams.pipeline import SOURCE_HEADER
from tests.fixtures.faults import ENV
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


async def test_a_state_stage_dead_letter_is_replayed_to_the_state_input_topic_and_applied(
        worker_factory: Any, envelope_factory: EnvelopeFactory, publish_raw: Any, topics: Any,
        consumer_factory: Any, tmp_path: Path) -> None:
    deliveries = [stripe_payment_intent(f"payment_intent.{kind}", "pi_state_dlq", amount=900, currency="EUR",
                                        created=1_790_000_000 + i)
                  for i, kind in enumerate(("created", "processing", "succeeded"))]
    envelopes = [envelope_factory(d.body) for d in deliveries]
    broken = tmp_path / "state-machine-broken"
    broken.touch()
    fault = {"fail_apply": {"event_keys": [envelopes[2].key], "while_exists": str(broken)}}
    worker: WorkerProcess = worker_factory(module="tests.fixtures.faults", **{ENV: json.dumps(fault)})
    await publish_raw(*envelopes)
    [letter] = await drain(await consumer_factory(topics.dlq), expected=1, timeout_s=60)
    info = parse_dlq_headers(letter.headers)
    assert (info.stage, info.original_topic, info.replay_topic, info.attempts) == ("state", topics.raw,
                                                                                 topics.state_input, 1)
    event = payment_event_serde().decode(letter.value)
    assert (event.event_key, letter.key) == (envelopes[2].key, b"stripe:pi_state_dlq")
    assert dict(letter.headers)[SOURCE_HEADER] == f"{info.original_partition}:{info.original_offset}".encode()
    listed = [json.loads(line) for line in cli(worker.env, "list", "--json").stdout.splitlines()]
    assert [(r["stage"], r["replay_to"], r["attempts"]) for r in listed] == [("state", topics.state_input, 1)]

    done = cli(worker.env, "replay", "--stage", "state", "--yes")  # before the fix: it fails again
    assert done.returncode == 0 and f"1 to {topics.state_input}" in done.stderr, done.stderr
    letters = await drain(await consumer_factory(topics.dlq), expected=2, timeout_s=60)
    again = parse_dlq_headers(letters[-1].headers)
    assert (again.stage, again.original_topic, again.replay_topic, again.attempts) == (
        "state", topics.state_input, topics.state_input, 2)

    broken.unlink()  # the fix is deployed
    done = cli(worker.env, "replay", "--stage", "state", "--yes")
    assert done.returncode == 0 and "replayed 2" in done.stderr, done.stderr

    def applied() -> bool:
        response = worker.get("/payments/pi_state_dlq")
        return response.status_code == 200 and response.json()["payment"]["version"] == 3

    for _ in range(150):
        if applied():
            break
        await asyncio.sleep(0.2)
    payment = worker.get("/payments/pi_state_dlq").json()["payment"]
    assert (payment["status"], payment["version"], payment["captured_minor"]) == ("succeeded", 3, 900)
    await asyncio.sleep(1)
    assert len(await drain(await consumer_factory(topics.dlq), idle_s=1)) == 2  # applied: no third failure
    events = await drain(await consumer_factory(topics.events), idle_s=1)
    assert sorted(payment_event_serde().decode(r.value).event_key for r in events) == sorted(e.key for e in envelopes)
