"""Runs the pipeline's processes as supervised children in one terminal.

Children start in order, each waited for until ready; their output is shown
interleaved with a coloured name prefix; a child that dies is reported loudly and
restarted (at most `max_restarts` times); Ctrl-C (or SIGTERM) stops all of them in
reverse order — SIGTERM first, SIGKILL after a grace period — and leaves nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx

from paystream.core.broker.process import die_with_parent

__all__ = ["ChildSpec", "Supervisor", "http_ready", "tcp_ready"]

ReadyCheck = Callable[[], Awaitable[bool]]
_COLORS = ("\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m", "\033[31m")
_RESET = "\033[0m"


def tcp_ready(host: str, port: int) -> ReadyCheck:
    async def check() -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    return check


def http_ready(url: str) -> ReadyCheck:
    async def check() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(url)).status_code == 200
        except httpx.HTTPError:
            return False

    return check


@dataclass
class ChildSpec:
    name: str
    argv: Sequence[str]
    ready: ReadyCheck
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 60.0


@dataclass
class _Child:
    spec: ChildSpec
    color: str
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    pump: asyncio.Task[None] | None = None


class Supervisor:
    def __init__(self, *, max_restarts: int = 3, stop_grace_s: float = 15.0, color: bool | None = None) -> None:
        self._children: list[_Child] = []
        self._max_restarts = max_restarts
        self._stop_grace_s = stop_grace_s
        self._color = sys.stdout.isatty() if color is None else color
        self._stopping = False
        self.failed = asyncio.Event()

    def _prefix(self, child: _Child) -> str:
        name = f"{child.spec.name:<8}|"
        return f"{child.color}{name}{_RESET} " if self._color else f"{name} "

    def say(self, text: str) -> None:
        print(text, flush=True)

    async def _spawn(self, child: _Child) -> None:
        env = {**os.environ, **child.spec.env}
        child.process = await asyncio.create_subprocess_exec(
            *child.spec.argv, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent)
        child.pump = asyncio.create_task(self._pump(child, child.process))

    async def _pump(self, child: _Child, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        prefix = self._prefix(child)
        while line := await process.stdout.readline():
            self.say(prefix + line.decode("utf-8", "replace").rstrip())
        code = await process.wait()
        if not self._stopping:
            await self._on_death(child, code)

    async def _on_death(self, child: _Child, code: int) -> None:
        self.say(f"{self._prefix(child)}!!! {child.spec.name} exited with code {code}")
        if child.restarts >= self._max_restarts:
            self.say(f"{self._prefix(child)}!!! giving up after {child.restarts} restarts; stopping everything")
            self.failed.set()
            return
        child.restarts += 1
        self.say(f"{self._prefix(child)}!!! restarting ({child.restarts}/{self._max_restarts})")
        await asyncio.sleep(1)
        if not self._stopping:
            await self._spawn(child)

    async def start(self, spec: ChildSpec) -> None:
        """Start one child and wait until its readiness check passes."""
        child = _Child(spec, _COLORS[len(self._children) % len(_COLORS)])
        self._children.append(child)
        await self._spawn(child)
        deadline = time.monotonic() + spec.ready_timeout_s
        while not await spec.ready():
            if child.process is not None and child.process.returncode is not None and child.restarts >= \
                    self._max_restarts:
                raise RuntimeError(f"{spec.name} exited before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{spec.name} was not ready within {spec.ready_timeout_s:.0f}s")
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """SIGTERM every child in reverse order, SIGKILL what outlives the grace period."""
        self._stopping = True
        for child in reversed(self._children):
            process = child.process
            if process is None or process.returncode is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self._stop_grace_s)
            except TimeoutError:
                self.say(f"{self._prefix(child)}did not stop in {self._stop_grace_s:.0f}s; killing")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        for child in self._children:
            if child.pump is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await child.pump

    def pids(self) -> dict[str, int]:
        return {c.spec.name: c.process.pid for c in self._children if c.process and c.process.returncode is None}
