"""Machine facts for benchmark reports."""

from __future__ import annotations

import os
import platform
import signal
from datetime import UTC, datetime
from pathlib import Path

REPORTS = Path(__file__).resolve().parent / "reports"


def interrupt_on_sigterm() -> None:
    """SIGTERM ends a benchmark as Ctrl-C does, through its `finally` blocks, so what it started (brokers,
    pipeline processes) stops in order. By default Python exits at once and every child gets its
    parent-death signal at the same moment: a worker whose broker went first then hung in its stop."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def describe() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def conditions() -> dict[str, str]:
    """What else the machine was doing: the load average now and `BENCH_NOTE` (say who shared it)."""
    return {"load average (1/5/15 min) when written": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "other work on the machine": os.environ.get("BENCH_NOTE", "not stated (set BENCH_NOTE)")}


def machine_table() -> str:
    facts = describe() | conditions()
    return "\n".join(["| machine | |", "|---|---|", *(f"| {k} | {v} |" for k, v in facts.items())])


def write_report(name: str, title: str, body: str) -> Path:
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / f"{name}.md"
    path.write_text(f"# {title}\n\n{machine_table()}\n\n{body.strip()}\n", "utf-8")
    return path
