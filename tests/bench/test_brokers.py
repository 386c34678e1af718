"""The benchmarks' Apache Kafka runs as Kafka's own start script runs it; the suite's keeps its fast start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import brokers

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]


def jvm_arguments(pid: int) -> list[str]:
    return [arg.decode() for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if arg]


def test_the_bench_broker_has_kafkas_start_script_jvm_settings() -> None:
    with brokers.running(brokers.APACHE_KAFKA, warm_up_records=0) as started:
        arguments = jvm_arguments(started.pid)
    wanted = [*brokers.KAFKA_START_HEAP.split(), *brokers.KAFKA_START_JVM.split()]
    assert [arg for arg in arguments if arg in wanted] == wanted
    assert "-XX:TieredStopAtLevel=1" not in arguments and "-XX:+UseSerialGC" not in arguments


def test_the_suite_broker_keeps_the_fast_starting_jit(apache_kafka: Any) -> None:
    [node] = apache_kafka.apache.nodes
    arguments = jvm_arguments(node.process.pid)
    assert "-XX:TieredStopAtLevel=1" in arguments and "-XX:+UseG1GC" not in arguments


async def test_the_warm_up_sends_its_records_through_the_broker_and_reads_them_back(apache_kafka: Any) -> None:
    assert await brokers.warm_up(apache_kafka.bootstrap, records=3000, partitions=3) == 3000
