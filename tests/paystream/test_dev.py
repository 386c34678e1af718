"""`paystream dev` (what `make run` runs): everything up, a pasteable signed curl that works,
`paystream send` flows into SQLite, a killed child is reported and restarted, Ctrl-C leaves nothing."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from paystream.core.broker import free_port


def children(pid: int) -> dict[int, str]:
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


class Output:
    """Collects the dev process's stdout in a thread, so the test can wait for lines."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout_s: float = 120) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if re.search(pattern, line):
                    return line
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines[-80:]))

    def text(self) -> str:
        return "\n".join(self.lines)


def test_dev_pipeline_end_to_end(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("BROKER", "INGRESS", "WORKER", "SINK_METRICS")}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PAYSTREAM_")},
           "PAYSTREAM_DATA_DIR": str(tmp_path / "data"), "PAYSTREAM_PARTITIONS": "2",
           **{f"PAYSTREAM_{name}_PORT": str(port) for name, port in ports.items()}}
    process = subprocess.Popen([sys.executable, "-m", "paystream", "dev"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    output = Output(process)
    known: dict[int, str] = {}
    try:
        output.wait_for("paystream is running", timeout_s=180)
        known = children(process.pid)
        assert {"broker", "ingress", "worker", "sink"} <= {c.split(" paystream ")[-1].split()[0]
                                                           for c in known.values()}, known
        ingress = f"http://127.0.0.1:{ports['INGRESS']}"
        assert ingress in output.text() and f"{ports['WORKER']}/ops#token=" in output.text()
        output.wait_for("worker ready", timeout_s=10)  # one readable line, not Faust's terminal spinner
        assert "\x1b" not in output.text()
        # the pasteable curl, signed now, is accepted
        curl = output.lines[output.lines.index(output.wait_for("valid for 5 minutes")) + 1].strip()
        if shutil.which("curl"):
            pasted = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30, check=False)
            assert '"status":"accepted"' in pasted.stdout, pasted.stdout + pasted.stderr
            if shutil.which("openssl"):
                self_signing = output.lines[output.lines.index(output.wait_for("signs itself")) + 1].strip()
                pasted = subprocess.run(["bash", "-c", self_signing], capture_output=True, text=True, timeout=30,
                                        check=False)
                assert '"status":"accepted"' in pasted.stdout, pasted.stdout + pasted.stderr
        sent = subprocess.run([sys.executable, "-m", "paystream", "send", "--provider", "all", "--scenario",
                               "storm", "--count", "3", "--seed", "7", "--url", ingress],
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "gave up" in sent.stdout and "0 gave up" in sent.stdout
        database = tmp_path / "data" / "paystream.db"
        deadline = time.monotonic() + 90
        payments = 0
        while time.monotonic() < deadline and payments < 6:
            if database.exists():
                with sqlite3.connect(database) as conn:
                    payments = conn.execute("SELECT count(*) FROM payments").fetchone()[0]
            time.sleep(0.5)
        assert payments >= 6  # three stories per provider (the pasted curls add their own payments)
        # a child that dies is reported loudly and restarted
        worker_pid = next(pid for pid, cmd in children(process.pid).items() if cmd.rstrip().endswith("worker"))
        os.kill(worker_pid, signal.SIGKILL)
        output.wait_for("worker exited with code -9")
        output.wait_for(r"restarting \(1/3\)")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{ports['WORKER']}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("the restarted worker never became ready:\n" + output.text()[-4000:])
        known.update(children(process.pid))
        # Ctrl-C stops everything and leaves nothing behind
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
        output.wait_for("all processes stopped", timeout_s=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()
        for pid in known:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"child {pid} ({known[pid]}) outlived paystream dev")
