"""bench-e2e's start-up: a pipeline process that never gets ready fails the series with the end of its log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.e2e import process_log, wait_ready
from paystream.core.broker import free_port


def test_a_process_that_exits_is_named_with_its_code_and_log(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_LOGS", raising=False)
    log = process_log("embedded", "worker", tmp_path)
    assert log == tmp_path / "embedded-worker.log"
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-c", "print('cannot bind the web port'); raise SystemExit(3)"],
                                   stdout=out, stderr=subprocess.STDOUT)
    with pytest.raises(RuntimeError) as failed:
        wait_ready(f"http://127.0.0.1:{free_port()}/ready", process, log, timeout_s=30)
    assert "exited with 3" in str(failed.value)
    assert "cannot bind the web port" in str(failed.value)


def test_a_process_that_never_answers_is_stopped_waiting_for(tmp_path: Path) -> None:
    log = tmp_path / "sink.log"
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(RuntimeError, match=r"not ready after 1 s; its log .* ends:\n\(no log\)"):
            wait_ready(f"http://127.0.0.1:{free_port()}/ready", process, log, timeout_s=1)
    finally:
        process.kill()
        process.wait()
