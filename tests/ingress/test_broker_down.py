"""No 2xx for anything the broker did not acknowledge; service resumes when it returns.

Each test runs on a private broker of its own kind (`[embedded]`: Tansu, memory only, so a restart is an
empty new incarnation; `[apache-kafka]`: one KRaft node that keeps its log across a restart) and with
each ingress client (`PAYSTREAM_INGRESS_PRODUCER`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingress.signing import sign_stripe
from paystream.core.broker import EmbeddedBroker, free_port
from schemas.serde import envelope_serde
from schemas.topics import TopicCatalog, ensure_topics
from tests.fixtures.apache_kafka import ApacheKafka
from tests.fixtures.ingress import STRIPE_SECRET
from tests.fixtures.kafka import drain

pytestmark = pytest.mark.both_brokers


class PrivateBroker:
    """A broker this test alone stops, restarts on the same port and pauses (SIGSTOP)."""

    def __init__(self, embedded: bool, broker_factory: Callable[..., EmbeddedBroker], workdir: Path) -> None:
        self.embedded = embedded
        self._factory = broker_factory
        self._tansu: EmbeddedBroker | None = None
        self._apache = None if embedded else ApacheKafka(workdir, nodes=1)
        self.port = free_port() if self._apache is None else self._apache.nodes[0].port

    @property
    def persistent(self) -> bool:
        """Whether records survive a restart (Apache Kafka), or each start is an empty cluster (Tansu)."""
        return self._apache is not None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> PrivateBroker:
        if self._apache is None:
            self._tansu = self._factory(port=self.port).start()
        elif any(node.process is not None or node.properties_path.exists() for node in self._apache.nodes):
            self._apache.restart(self._apache.nodes[0])  # same port, same data
        else:
            self._apache.start()
        return self

    def stop(self) -> None:
        if self._tansu is not None:
            self._tansu.stop()
        if self._apache is not None:
            self._apache.nodes[0].stop()

    def _signal(self, signum: int) -> None:
        if self._tansu is not None:
            (self._tansu.pause if signum == signal.SIGSTOP else self._tansu.resume)()
        elif self._apache is not None and self._apache.nodes[0].process is not None:
            os.kill(self._apache.nodes[0].process.pid, signum)  # kafka.sh execs java: this is the JVM

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def close(self) -> None:
        self.resume()
        if self._apache is not None:
            self._apache.stop()


@pytest.fixture(params=["confluent", "aiokafka"])
def client(request: pytest.FixtureRequest) -> str:
    """The ingress producer under test (`PAYSTREAM_INGRESS_PRODUCER`)."""
    return str(request.param)


@pytest.fixture
def private_broker(kafka: Any, broker_factory: Any, tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(kafka.is_embedded, broker_factory, tmp_path / "private-kafka")
    yield broker
    broker.close()


async def post(http: httpx.AsyncClient, url: str, event_id: str) -> httpx.Response:
    body = b'{"id":"%s","type":"charge.succeeded"}' % event_id.encode()
    return await http.post(f"{url}/webhooks/stripe", content=body, headers={
        "content-type": "application/json", "stripe-signature": sign_stripe(body, STRIPE_SECRET, int(time.time()))})


async def until_ready(http: httpx.AsyncClient, url: str, within_s: float = 20) -> None:
    """Wait as a load balancer does before it routes to a new ingress: on a just-started Apache Kafka node the
    idempotent producer's id can take seconds ("coordinator load in progress"), and /ready says so."""
    deadline = time.monotonic() + within_s
    while (await http.get(f"{url}/ready")).status_code != 200:
        assert time.monotonic() < deadline, "ingress not ready"
        await asyncio.sleep(0.3)


async def keys_on(bootstrap: str, topic: str, consumer_factory: Any, expected: int | None) -> list[str]:
    from aiokafka import TopicPartition

    from paystream.core.broker import CompatConsumer

    consumer = CompatConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in await consumer._client._wait_on_metadata(topic)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        return [envelope_serde().decode(r.value).provider_event_id
                for r in await drain(consumer, expected=expected, idle_s=0.5)]
    finally:
        await consumer.stop()


async def test_broker_stopped_gives_503_then_recovers(private_broker: PrivateBroker, ingress_factory: Any,
                                                      ingress_settings_factory: Any, consumer_factory: Any,
                                                      client: str) -> None:
    broker = private_broker.start()
    catalog = TopicCatalog(partitions=2)
    await ensure_topics(broker.bootstrap, catalog)
    server = ingress_factory(ingress_settings_factory(kafka_bootstrap=broker.bootstrap, embedded_broker=broker.embedded,
                                                      publish_timeout_s=1.0, ingress_producer=client))
    async with httpx.AsyncClient(timeout=10) as http:
        await until_ready(http, server.url)
        assert (await post(http, server.url, "evt_before")).status_code == 200
        assert (await http.get(f"{server.url}/ready")).status_code == 200
        broker.stop()
        responses = [await post(http, server.url, f"evt_down_{n}") for n in range(3)]
        assert [r.status_code for r in responses] == [503, 503, 503]
        assert all(r.headers["retry-after"] == "5" for r in responses)
        assert all(r.json()["error"] == "broker_unavailable" for r in responses)
        ready = await http.get(f"{server.url}/ready")
        assert ready.status_code == 503
        # the same port again: a new, empty incarnation of the embedded broker; the same log on Apache Kafka
        broker.start()
        await ensure_topics(broker.bootstrap, catalog)
        deadline = time.monotonic() + 30
        while True:
            response = await post(http, server.url, "evt_down_0")  # the provider's retry
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert response.status_code == 200
    # nothing answered 503 is stored behind our back: evt_down_1 and _2 never, evt_down_0 only by its retry
    expected = ["evt_before", "evt_down_0"] if broker.persistent else ["evt_down_0"]
    assert sorted(await keys_on(broker.bootstrap, catalog.raw, consumer_factory, expected=None)) == expected


async def test_paused_broker_never_yields_a_2xx_for_unstored_events(private_broker: PrivateBroker,
                                                                    ingress_factory: Any,
                                                                    ingress_settings_factory: Any,
                                                                    consumer_factory: Any, client: str) -> None:
    broker = private_broker.start()
    catalog = TopicCatalog(partitions=2)
    await ensure_topics(broker.bootstrap, catalog)
    server = ingress_factory(ingress_settings_factory(kafka_bootstrap=broker.bootstrap, embedded_broker=broker.embedded,
                                                      publish_timeout_s=1.0, ingress_producer=client))
    accepted: list[str] = []
    async with httpx.AsyncClient(timeout=10) as http:
        await until_ready(http, server.url)
        assert (await post(http, server.url, "evt_0")).status_code == 200
        accepted.append("evt_0")
        broker.pause()
        try:
            frozen = await asyncio.gather(*(post(http, server.url, f"evt_p{n}") for n in range(5)))
        finally:
            broker.resume()
        assert {r.status_code for r in frozen} == {503}
        for n in range(5):  # providers retry
            deadline = time.monotonic() + 20
            while (await post(http, server.url, f"evt_p{n}")).status_code != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.3)
            accepted.append(f"evt_p{n}")
    stored = await keys_on(broker.bootstrap, catalog.raw, consumer_factory, expected=None)
    # every 2xx is stored; a 503'd attempt that was already in flight may be stored too (dedup drops it later)
    assert set(accepted) <= set(stored)


async def test_starts_without_broker_and_becomes_ready(private_broker: PrivateBroker, ingress_factory: Any,
                                                       ingress_settings_factory: Any, client: str) -> None:
    broker = private_broker  # not started yet: only its port is known
    server = ingress_factory(ingress_settings_factory(kafka_bootstrap=broker.bootstrap, embedded_broker=broker.embedded,
                                                      publish_timeout_s=1.0, ingress_producer=client))
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{server.url}/health")).status_code == 200
        assert (await http.get(f"{server.url}/ready")).status_code == 503
        assert (await post(http, server.url, "evt_x")).status_code == 503
        broker.start()
        await ensure_topics(broker.bootstrap, TopicCatalog(partitions=2))
        await until_ready(http, server.url)
        assert (await post(http, server.url, "evt_x")).status_code == 200
