"""A short coverage-guided run of `fuzz_atheris.py` (atheris installs as a wheel on CPython 3.11).

`make fuzz` runs it for longer; here 15 s from the seed corpus must end without a crash.
Skipped where atheris is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).with_name("fuzz_atheris.py")


def test_atheris_smoke(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    result = subprocess.run(
        [sys.executable, str(HARNESS), "-max_total_time=15", "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/",
         str(tmp_path / "corpus")],
        capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "TMPDIR": str(tmp_path)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Done" in output and "cov:" in output
    assert not list(tmp_path.glob("crash-*")), output[-4000:]
