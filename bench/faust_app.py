"""Run a throwaway Faust app (its source as a string) as a worker process until it writes its result file.

The benches measure Faust itself this way (`streams.py`'s forward-only floor, `table_api.py`'s table
variants): a fresh interpreter and a fresh data dir per run, the app's figure read from `OUT`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["run_faust_app"]

ROOT = Path(__file__).resolve().parents[1]


def run_faust_app(source: str, env: dict[str, str], timeout_s: float = 600) -> str:
    """Start `source` as module `bench_app` under `faust worker` with `env` (plus `OUT`, `DATA` and
    `PYTHONPATH`), wait for the text it writes to `OUT`, then stop it and remove its folder."""
    folder = Path(tempfile.mkdtemp(prefix="bench-faust-"))
    (folder / "bench_app.py").write_text(source)
    out = folder / "result"
    process = subprocess.Popen([sys.executable, "-m", "faust", "-A", "bench_app", "worker", "-l", "warn",
                                "--without-web"], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**env, "OUT": str(out), "DATA": str(folder / "data"),
                                    "PYTHONPATH": f"{folder}:{ROOT}"})
    try:
        deadline = time.monotonic() + timeout_s
        while not out.exists():
            if process.poll() is not None:
                raise RuntimeError(f"the Faust app exited with {process.returncode} before its result")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no result from the Faust app in {timeout_s:.0f} s")
            time.sleep(0.2)
        time.sleep(0.2)  # the result is written in one call; let it close
        return out.read_text()
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)
