"""Apache Kafka (KRaft) as child JVMs for tests and benchmarks: one combined node, or a replicated cluster.

`scripts/kafka.sh` fetches the jars once (Maven, into the git-ignored `.cache/kafka/`) and runs
the JVM; this module writes each node's `server.properties`, formats its storage, starts it and
waits until the cluster's metadata lists every broker (a Kafka request, not a sleep). Each node
is a combined broker+controller with a static controller quorum, so three nodes survive the loss
of one. Every JVM gets a parent-death signal and is killed in `stop()`; the data dirs go with it.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import ctypes
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self, TypeVar

from paystream.core.broker import free_port

__all__ = ["ApacheKafka", "KafkaNode", "ensure_kafka_jars"]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka.sh"
"""In the source tree only (tests, `bench/`): the installed package has no Apache Kafka launcher."""
HEAP = "-Xmx320m -Xms64m"
_PR_SET_PDEATHSIG = 1
T = TypeVar("T")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """SIGKILL the JVM if the test process dies, so no run leaves a broker behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def ensure_kafka_jars() -> Path:
    """The cached jar directory; fetched with Maven on first use (a minute, once per clone)."""
    result = subprocess.run([str(SCRIPT), "fetch"], capture_output=True, text=True, timeout=600,  # noqa: S603
                            check=False)  # our own script, no shell
    if result.returncode != 0:
        raise RuntimeError(f"scripts/kafka.sh fetch failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def _cluster_id() -> str:
    """A Kafka Uuid in its base64 form, never starting with '-' (argparse would read an option)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


@dataclass
class KafkaNode:
    """One combined broker+controller JVM."""

    node_id: int
    port: int
    controller_port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def properties_path(self) -> Path:
        return self.workdir / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.workdir / "kafka.log"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, env: dict[str, str]) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap()
        self.process = subprocess.Popen([str(SCRIPT), "start", str(self.properties_path)], env=env,  # noqa: S603
                                        stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                        preexec_fn=_die_with_parent)  # noqa: PLW1509 - only prctl

    def kill(self) -> None:
        """kill -9: no controlled shutdown, for failover tests."""
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.wait()
        self._reap()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (controlled shutdown), SIGKILL after `timeout_s`."""
        if self.running():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reap()

    def _reap(self) -> None:
        self.process = None  # stopped on purpose: `wait_ready` only reports nodes that died on their own
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ApacheKafka:
    """`nodes` KRaft nodes on free ports; topics default to replication `min(nodes, 3)`.

    `overrides` are extra `server.properties` lines (the deploy configs' values, say).
    """

    def __init__(self, workdir: Path, *, nodes: int = 1, overrides: dict[str, str] | None = None,
                 ready_timeout_s: float = 90.0, heap: str = HEAP, jvm_options: str | None = None) -> None:
        self.workdir = workdir
        self.heap = heap
        self.jvm_options = jvm_options
        """None: `scripts/kafka.sh`'s fast-starting JIT for tests; benchmarks pass Kafka's own (`bench/brokers.py`)."""
        self.overrides = dict(overrides or {})
        self.ready_timeout_s = ready_timeout_s
        self.cluster_id = _cluster_id()
        self.nodes = [KafkaNode(i + 1, free_port(), free_port(), workdir / f"node-{i + 1}") for i in range(nodes)]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def _env(self) -> dict[str, str]:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "KAFKA_HEAP_OPTS": self.heap}
        return env if self.jvm_options is None else {**env, "KAFKA_JVM_OPTS": self.jvm_options}

    def restart(self, node: KafkaNode) -> None:
        """Start a stopped or killed node again on its ports and data, and wait until it is registered."""
        node.kill()
        node.start(self._env)
        self.wait_ready()

    def properties(self, node: KafkaNode) -> dict[str, str]:
        replicas = min(len(self.nodes), 3)
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        values = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(node.workdir / "data"),
            "num.partitions": "1",
            "default.replication.factor": str(replicas),
            "min.insync.replicas": str(min(replicas, 2)),
            "offsets.topic.replication.factor": str(replicas),
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": str(replicas),
            "transaction.state.log.min.isr": str(min(replicas, 2)),
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": str(replicas),
            "share.coordinator.state.topic.min.isr": str(min(replicas, 2)),
            "group.initial.rebalance.delay.ms": "0",
            # failover in seconds, not half a minute: a dead broker is fenced and leaves the ISR quickly
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "500",
            "replica.lag.time.max.ms": "3000",
            "auto.create.topics.enable": "false",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.segment.bytes": str(16 * 1024 * 1024),
            "log.retention.check.interval.ms": "600000",
        }
        return values | self.overrides

    def start(self) -> Self:
        """Format and start every node, then wait until the metadata lists all of them."""
        ensure_kafka_jars()
        env = self._env
        for node in self.nodes:
            node.workdir.mkdir(parents=True, exist_ok=True)
            node.properties_path.write_text(
                "".join(f"{key}={value}\n" for key, value in self.properties(node).items()))
            result = subprocess.run([str(SCRIPT), "format", str(node.properties_path), self.cluster_id],  # noqa: S603
                                    env=env, capture_output=True, text=True, timeout=120, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"formatting node {node.node_id} failed:\n{result.stdout}\n{result.stderr}")
        for node in self.nodes:
            node.start(env)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, brokers: int | None = None) -> None:
        """Poll a metadata request until `brokers` (default: all running nodes) are registered."""
        expected = brokers if brokers is not None else sum(node.running() for node in self.nodes)
        deadline = time.monotonic() + self.ready_timeout_s
        last: BaseException | None = None
        while time.monotonic() < deadline:
            dead = [node for node in self.nodes if node.process is not None and not node.running()]
            if dead:
                raise RuntimeError(f"Kafka node {dead[0].node_id} exited:\n{dead[0].tail()}")
            live = [node for node in self.nodes if node.running()]
            if not all(_answers_requests(node.port) for node in live):
                time.sleep(0.1)  # a JVM starting up: an aiokafka client would give up half-connected
                continue
            try:
                if len(_in_thread(_broker_ids(",".join(node.bootstrap for node in live)))) >= expected:
                    return
            except Exception as exc:  # noqa: BLE001 - not up yet: any client error means "try again"
                last = exc
            time.sleep(0.2)
        raise RuntimeError(f"Apache Kafka not ready in {self.ready_timeout_s:.0f}s ({last!r}):\n"
                           + "\n".join(node.tail(15) for node in self.nodes))

    def stop(self) -> None:
        """Kill every JVM (tests keep nothing) and remove the data dirs."""
        for node in self.nodes:
            if node.running():
                assert node.process is not None
                node.process.kill()
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _answers_requests(port: int) -> bool:
    """Whether the broker answers an ApiVersions v0 request yet (raw socket, always closed).

    Kafka accepts connections before it processes requests; an aiokafka client that bootstraps in
    that gap fails with a connection it never closes (a ResourceWarning in some later test)."""
    client_id = b"ready-probe"
    payload = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(struct.pack(">i", len(payload)) + payload)
            header = _recv_exactly(sock, 4)
            body = _recv_exactly(sock, struct.unpack(">i", header)[0])
    except (OSError, struct.error):
        return False
    correlation_id, error_code = struct.unpack(">ih", body[:6])
    return bool(correlation_id == 7 and error_code == 0)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def _in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a fresh loop in another thread: safe whether or not a loop is running here."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _broker_ids(bootstrap: str) -> list[int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:  # a start that fails half-way (the broker is still coming up) must close what it opened
        await admin.start()
        cluster = await admin.describe_cluster()
        return [broker["node_id"] for broker in cluster["brokers"]]
    finally:
        await admin.close()
