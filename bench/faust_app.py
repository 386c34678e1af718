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
    log = folder / "app.log"
    with log.open("wb") as log_file:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([sys.executable, "-m", "faust", "-A", "bench_app", "worker", "-l", "warn",
                                    "--without-web"], cwd=folder, stdout=subprocess.DEVNULL, stderr=log_file,
                                   env={**env, "OUT": str(out), "DATA": str(folder / "data"),
                                        "PYTHONPATH": f"{folder}:{ROOT}"})
    try:
        deadline = time.monotonic() + timeout_s
        while not out.exists():
            if process.poll() is not None:
                raise RuntimeError(f"the Faust app exited with {process.returncode} before its result:\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no result from the Faust app in {timeout_s:.0f} s:\n{_tail(log)}")
            if b"Crashed reason=" in log.read_bytes():  # an agent died: no result will come
                raise RuntimeError(f"the Faust app's agent crashed:\n{_tail(log)}")
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


def _tail(log: Path, lines: int = 30) -> str:
    """The app's last warnings and errors (it runs at level warn)."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
