"""Formats the fault-injection figures (test-artifacts/faults-<scale>.json) into bench/reports/faults.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import write_report

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def main() -> None:
    runs = sorted(ARTIFACTS.glob("faults-*.json"))
    if not runs:
        raise SystemExit("no test-artifacts/faults-*.json: run `make test-faults` (or tests/reliability) first")
    sections = []
    for path in runs:
        figures = json.loads(path.read_text())
        timeline = figures.pop("timeline", [])
        rows = "\n".join(f"| {key.replace('_', ' ')} | {value} |" for key, value in figures.items())
        steps = "\n".join(f"- `{line.strip()}`" for line in timeline)
        heading = f"## {figures.get('broker', 'embedded')}, scale: {figures['scale']}"
        sections.append(f"{heading}\n\n| figure | value |\n|---|---|\n{rows}\n\nFaults, in order:\n"
                        f"{steps}\n")
    path = write_report("faults", "Fault injection (`make test-faults`; reduced size in `make test`)", f"""
Two ingresses, two workers and the PostgreSQL sink on the embedded broker, under a provider-like load that
posts every event 3-5 times (some copies at once through both ingresses) and retries 503s and refused
connections. Invariant: every acknowledged event exactly once in `payment_events`, `payments` equal to the
reference model, nothing for events never acknowledged, and on `payments.events.v1` an event id from one
source offset only. `lost`, `doubled`, `rows never acknowledged` and `events from two sources` must be 0.

{chr(10).join(sections)}""")
    print(f"report: {path}")


if __name__ == "__main__":
    main()
