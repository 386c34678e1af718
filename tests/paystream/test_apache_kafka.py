"""The Apache Kafka fixtures themselves: a replicated cluster that behaves like production's.

The failover tests build on `kafka_cluster_factory`; this proves what they rely on: three nodes,
replication factor 3 and `min.insync.replicas=2`, so acks=all writes survive a kill -9 of one broker
and are refused (not silently under-replicated) when two are gone. Also: nothing is left running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from paystream.core.broker import producer_options
from tests.fixtures.apache_kafka import ApacheKafka

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]


async def test_three_nodes_keep_acks_all_writes_through_one_kill_and_refuse_them_after_two(
        kafka_cluster_factory: Callable[..., ApacheKafka]) -> None:
    cluster = kafka_cluster_factory(3)
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("failover", 1, 3)])
        assert len((await admin.describe_cluster())["brokers"]) == 3
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, request_timeout_ms=5000,
                                **producer_options(embedded=False))
    await producer.start()
    try:
        await producer.send_and_wait("failover", b"before", key=b"k")
        cluster.nodes[0].kill()
        await asyncio.wait_for(producer.send_and_wait("failover", b"one down", key=b"k"), 60)
        cluster.nodes[1].kill()
        pending = await producer.send("failover", b"two down", key=b"k")
        with pytest.raises((KafkaError, TimeoutError)):  # NotEnoughReplicas, retried until the bound
            await asyncio.wait_for(asyncio.shield(pending), 5)
        cluster.restart(cluster.nodes[1])  # the ISR is 2 again: the held write lands, nothing is lost
        await asyncio.wait_for(pending, 60)
    finally:
        await asyncio.wait_for(producer.stop(), 30)


def test_the_session_node_is_a_single_combined_kraft_node(apache_kafka: Any) -> None:
    node: ApacheKafka = apache_kafka.apache
    [only] = node.nodes
    props = node.properties(only)
    assert props["process.roles"] == "broker,controller"
    assert props["offsets.topic.replication.factor"] == "1" and props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert only.running()


def test_stop_kills_every_jvm_and_removes_the_data(kafka_cluster_factory: Callable[..., ApacheKafka]) -> None:
    cluster = kafka_cluster_factory(1)
    processes = [node.process for node in cluster.nodes]
    cluster.stop()
    assert all(p is not None and p.poll() is not None for p in processes)
    assert not cluster.workdir.exists()
