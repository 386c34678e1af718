"""CPU seconds a process tree used, read from /proc: where a run's two cores went.

A benchmark that shares the machine's cores between a broker, the pipeline and its own load generator
can only say why a figure moved if it knows who used the CPU; wall-clock latency alone cannot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields after the command name (which may hold spaces), or None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))):
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def tree_cpu_s(pid: int, children: Mapping[int, list[int]] | None = None) -> float:
    """User + system seconds of `pid` and its live descendants (a shell's exec'd JVM, a server's workers)."""
    children = _children() if children is None else children
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        if fields := _stat_fields(current):
            total += (int(fields[11]) + int(fields[12])) / TICKS_PER_S
        pending.extend(children.get(current, ()))
    return total


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds over all cores since boot, from /proc/stat's first line."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICKS_PER_S, sum(values) / TICKS_PER_S


@dataclass
class CpuMeter:
    """Samples named process trees and the whole machine; `since()` gives the CPU seconds used in between."""

    pids: Mapping[str, int]

    def sample(self) -> dict[str, float]:
        children = _children()
        busy, total = machine_busy_s()
        return {**{name: tree_cpu_s(pid, children) for name, pid in self.pids.items()},
                "machine busy": busy, "machine total": total}

    @staticmethod
    def since(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
        return {name: after[name] - before[name] for name in before}
