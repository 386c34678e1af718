"""Root fixtures: one Kafka broker per test session, and factories around it.

By default a fresh embedded broker (Tansu) is started on a free port and is
guaranteed to be stopped when the session ends, even after failures (and the
kernel kills it if pytest itself dies). `--kafka-bootstrap HOST:PORT` or
`PAYSTREAM_KAFKA_BOOTSTRAP` point the suite at an existing cluster instead;
`--kafka-docker` starts Apache Kafka with testcontainers (needs Docker).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _pytest.nodeid import coerce_node_id

from paystream.broker import EmbeddedBroker, fetch_cluster_id
from schemas.topics import TopicCatalog, ensure_topics

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.ingress",
    "tests.fixtures.streams",
    "tests.fixtures.databases",
    "tests.fixtures.registry",
]

SHARED = Path(__file__).resolve().parent / "fixtures"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("paystream")
    group.addoption("--kafka-bootstrap", default=os.environ.get("PAYSTREAM_KAFKA_BOOTSTRAP", ""),
                    help="use this Kafka cluster instead of the embedded broker")
    group.addoption("--kafka-docker", action="store_true", default=False,
                    help="start Apache Kafka with testcontainers (needs a Docker engine)")
    group.addoption("--postgres-url", default=os.environ.get(
        "PAYSTREAM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
                    help="PostgreSQL used by postgres-marked tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test` runs two), keep tests that share a machine-wide resource on one worker.

    PostgreSQL tests share the local cluster, and two of them stop it; the PayPal certificate
    tests bind port 443 on loopback. xdist's scheduler groups by a `@<group>` suffix on the node
    id, which pytest-xdist 3.8 writes to `item._nodeid`; pytest 9 derives the id from `item._id`
    instead, so `xdist_group` marks alone group nothing (measured: a PostgreSQL test failed to
    connect while another worker had stopped the cluster). The suffix is set here directly.
    """
    for item in items:
        uses_postgres = {"postgres_url", "db_factory", "sink_backend"} & set(getattr(item, "fixturenames", ()))
        group = None
        if item.get_closest_marker("postgres") is not None or uses_postgres:
            group = "postgres"
        elif "tests/security/test_paypal_certs.py" in item.nodeid:
            group = "port-443"
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
            if getattr(config.option, "loadgroup", False) and "@" not in item.nodeid.rpartition("]")[2]:
                item._id = coerce_node_id(f"{item.nodeid}@{group}")


@dataclass
class KafkaTarget:
    """The broker the session talks to."""

    bootstrap: str
    embedded: EmbeddedBroker | None

    @property
    def is_embedded(self) -> bool:
        return self.embedded is not None


def _docker_kafka() -> Iterator[KafkaTarget]:
    try:
        from testcontainers.kafka import KafkaContainer
    except ImportError:
        pytest.skip("--kafka-docker needs the 'docker' extra (testcontainers)")
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:
        pytest.skip(f"--kafka-docker needs a running Docker engine: {exc}")
    with KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft() as container:
        yield KafkaTarget(container.get_bootstrap_server(), None)


@pytest.fixture(scope="session")
def kafka(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaTarget]:
    bootstrap = request.config.getoption("--kafka-bootstrap")
    if bootstrap:
        yield KafkaTarget(bootstrap, None)
        return
    if request.config.getoption("--kafka-docker"):
        yield from _docker_kafka()
        return
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    broker = EmbeddedBroker(log_path=log_path)
    broker.start()
    try:
        yield KafkaTarget(broker.bootstrap, broker)
    finally:
        broker.stop()


@pytest.fixture
def topic_catalog_factory() -> Callable[..., TopicCatalog]:
    """A catalog with a unique prefix, so tests sharing one broker never see each other's records."""

    def make(partitions: int = 4) -> TopicCatalog:
        return TopicCatalog(prefix=f"t{uuid.uuid4().hex[:10]}.", partitions=partitions)

    return make


@pytest.fixture
async def topics(kafka: KafkaTarget, topic_catalog_factory: Callable[..., TopicCatalog]) -> AsyncIterator[TopicCatalog]:
    """A fresh, created topic catalog on the session broker."""
    catalog = topic_catalog_factory()
    await ensure_topics(kafka.bootstrap, catalog)
    yield catalog


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., EmbeddedBroker]]:
    """Private embedded brokers for tests that stop, pause or restart one; all stopped afterwards."""
    started: list[EmbeddedBroker] = []

    def make(**kwargs: object) -> EmbeddedBroker:
        broker = EmbeddedBroker(log_path=tmp_path / f"tansu-{len(started)}.log", **kwargs)  # type: ignore[arg-type]
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
async def cluster_id(kafka: KafkaTarget) -> str:
    return await fetch_cluster_id(kafka.bootstrap)
