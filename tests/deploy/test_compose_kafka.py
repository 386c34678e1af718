"""The compose file's Apache Kafka settings run: a typo in a broker setting fails here, not in production.

The three `kafka-N` services' `KAFKA_*` environment is turned into `server.properties` the way the
apache/kafka image does (`KAFKA_FOO_BAR` -> `foo.bar`) and started by the Apache Kafka fixture on free
ports: same roles, listener names, protocol map and quorum shape; only host names, ports and data dirs
are local. The brokers' own config then must echo every value (an unknown key would be ignored
silently by Kafka, so it is looked up in what the broker reports).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.deploy.conftest import COMPOSE_FILE, load_yaml
from tests.fixtures.apache_kafka import ApacheKafka

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]

NOT_PROPERTIES = {"KAFKA_HEAP_OPTS"}  # read by the start script, not the broker
LOCAL = {"node.id", "listeners", "advertised.listeners", "controller.quorum.voters", "log.dirs"}


def _default(value: Any) -> str:
    """`${VAR:-default}` -> default, as compose resolves it with VAR unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def compose_properties(service: str) -> dict[str, str]:
    env = load_yaml(COMPOSE_FILE)["services"][service]["environment"]
    return {key.removeprefix("KAFKA_").lower().replace("_", "."): _default(value)
            for key, value in env.items() if key.startswith("KAFKA_") and key not in NOT_PROPERTIES}


def test_the_compose_brokers_share_one_layout() -> None:
    nodes = [compose_properties(f"kafka-{n}") for n in (1, 2, 3)]
    assert [p["node.id"] for p in nodes] == ["1", "2", "3"]
    assert nodes[0]["controller.quorum.voters"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    shared = [{k: v for k, v in p.items() if k not in {"node.id", "advertised.listeners"}} for p in nodes]
    assert shared[0] == shared[1] == shared[2]


async def test_a_cluster_with_the_compose_settings_starts_and_reports_them(
        kafka_cluster_factory: Callable[..., ApacheKafka]) -> None:
    props = compose_properties("kafka-1")
    assert props["listeners"] == "PLAINTEXT://:9092,CONTROLLER://:9093"  # the layout the fixture mirrors
    assert props["controller.listener.names"] == "CONTROLLER" and props["inter.broker.listener.name"] == "PLAINTEXT"
    overrides = {k: v for k, v in props.items() if k not in LOCAL}
    cluster = await asyncio.to_thread(kafka_cluster_factory, 3, **overrides)
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")])
        [resource] = response.resources
        reported = {entry[0]: entry[1] for entry in resource[-1]}  # (name, value, …) per config entry
    finally:
        await admin.close()
    for key, value in overrides.items():
        assert key in reported, f"docker-compose.yml sets {key}, which Apache Kafka does not know"
        assert reported[key] == value, f"{key}: compose says {value!r}, the broker runs {reported[key]!r}"
