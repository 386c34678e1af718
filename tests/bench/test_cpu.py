"""The e2e bench's CPU accounting: a busy grandchild is counted under the process that started it."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.cpu import CpuMeter, tree_cpu_s

SPIN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\ntime.sleep(30)"


def test_tree_cpu_counts_a_busy_descendant_and_not_an_idle_sibling() -> None:
    busy = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "$0"; true', SPIN])
    idle = subprocess.Popen(["sleep", "30"])
    try:
        meter = CpuMeter({"busy": busy.pid, "idle": idle.pid})
        before = meter.sample()
        deadline = time.monotonic() + 20
        while tree_cpu_s(busy.pid) - before["busy"] < 0.35 and time.monotonic() < deadline:
            time.sleep(0.05)
        used = CpuMeter.since(before, meter.sample())
        assert used["busy"] >= 0.35
        assert used["idle"] < 0.05
        assert used["machine busy"] >= used["busy"] - 0.05
        assert used["machine total"] > used["machine busy"]
    finally:
        for process in (busy, idle):
            subprocess.run(["pkill", "-KILL", "-P", str(process.pid)], check=False)
            process.kill()
            process.wait()
