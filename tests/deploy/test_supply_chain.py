"""`make docs` (docs/openapi.json) and `make sbom` (CycloneDX)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.conftest import REPO


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_openapi_matches_the_app() -> None:
    committed = (REPO / "docs" / "openapi.json").read_text("utf-8")
    assert committed == script("export_openapi").render(), "docs/openapi.json drifted from the app: run `make docs`"


def test_openapi_documents_the_webhooks_and_operations() -> None:
    document = json.loads((REPO / "docs" / "openapi.json").read_text("utf-8"))
    paths = document["paths"]
    for path in ("/webhooks/stripe", "/webhooks/paypal", "/webhooks/standard/{source}"):
        assert "post" in paths[path]
    for path in ("/health", "/ready", "/metrics"):
        assert "get" in paths[path]


def test_export_check_mode_detects_drift(tmp_path: Path) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n", "utf-8")
    command = [sys.executable, str(REPO / "scripts" / "export_openapi.py"), "--output", str(stale)]
    assert subprocess.run([*command, "--check"], capture_output=True, timeout=120, check=False).returncode == 1
    assert subprocess.run(command, capture_output=True, timeout=120, check=False).returncode == 0
    assert subprocess.run([*command, "--check"], capture_output=True, timeout=120, check=False).returncode == 0


def test_sbom_check_flags_drift_from_the_lock() -> None:
    sbom = script("sbom")
    locked = {"fastapi": "0.165.0", "pydantic-core": "2.50.5"}
    document = {"components": [{"name": "fastapi", "version": "0.165.0"}, {"name": "pydantic_core", "version": "2.0"},
                               {"name": "extra", "version": "1"}]}
    errors, warnings = sbom.check(document, locked)
    assert errors == ["pydantic-core: installed 2.0, constraints.txt pins 2.50.5"]
    assert warnings == ["installed without a pin in constraints.txt: extra"]


def test_sbom_describes_the_installed_environment(tmp_path: Path) -> None:
    pytest.importorskip("cyclonedx_py", reason="cyclonedx-bom not installed (dev dependency for `make sbom`)")
    output = tmp_path / "sbom.cdx.json"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "sbom.py"), "--output", str(output),
                             "--no-validate"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(output.read_text("utf-8"))
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.6"
    assert document["metadata"]["component"]["name"] == "paystream"
    components = {c["name"].lower().replace("_", "-"): c for c in document["components"]}
    locked = script("sbom").pins(REPO / "constraints.txt")
    for name in ("fastapi", "aiokafka", "faust-streaming", "pydantic"):
        assert components[name]["version"] == locked[name]
        assert components[name]["purl"].startswith(f"pkg:pypi/{name}@")
