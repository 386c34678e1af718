"""The dependency rule of docs/architecture.md, checked on the imports themselves.

schemas/ imports no other paystream package; ingress/, streams/ and connectors/
import schemas/ and paystream's library modules but never each other; nothing
imports the CLI. Nothing connects at import: importing every module starts no
thread and opens no socket.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import socket
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "ingress", "streams", "connectors", "paystream")
FORBIDDEN = {
    "schemas": {"ingress", "streams", "connectors", "paystream"},
    "ingress": {"streams", "connectors"},
    "streams": {"ingress", "connectors"},
    "connectors": {"ingress", "streams"},
}
CLI_MODULES = ("paystream.cli", "paystream.commands")


def imports_of(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_dependency_rule(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for name in imports_of(path):
            top = name.split(".")[0]
            assert top not in FORBIDDEN.get(package, set()), f"{module} imports {name}"
            if not module.startswith(CLI_MODULES) and module != "paystream.__main__":
                assert not name.startswith(CLI_MODULES), f"{module} imports the CLI ({name})"


def test_importing_every_module_connects_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_connect(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network connection at import: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    threads_before = set(threading.enumerate())
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if info.name.endswith("__main__") or ".migrations." in info.name:
                continue
            importlib.import_module(info.name)
    assert set(threading.enumerate()) <= threads_before
