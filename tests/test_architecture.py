"""The layering of docs/architecture.md ("Layering"), checked on the imports themselves.

Arrows run one way: `schemas/` imports nothing of ours; the ground (`paystream/core/`: settings,
broker connection and compatibility, logging, tracing, dead-letter tools) imports only `schemas/`;
the stages (`ingress/`, `streams/`, `connectors/`) import `schemas/` and the ground, never each
other and never the shell; the shell (the rest of `paystream/`: CLI, commands, dev) is the only
place that imports the stages. Every import counts, also those inside functions and under
TYPE_CHECKING. Nothing connects at import: importing every module starts no thread and opens no socket.
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
OURS = ("schemas", "ingress", "streams", "connectors", "paystream")
STAGES = ("ingress", "streams", "connectors")
GROUND = "paystream.core"


def imports_of(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found.append((".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"), path))
    return found


def layer(module: str) -> str:
    if module == "schemas" or module.startswith("schemas."):
        return "schemas"
    if module == GROUND or module.startswith(GROUND + "."):
        return "ground"
    top = module.split(".", maxsplit=1)[0]
    return top if top in STAGES else "shell"


ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "ground": {"schemas"},
    "shell": {"schemas", "ground", *STAGES},
    **{stage: {"schemas", "ground"} for stage in STAGES},
}
"""Which other layers of ours each layer may import (its own always)."""


def back_arrows(module: str, path: Path) -> list[str]:
    here = layer(module)
    wrong = []
    for name in imports_of(path):
        if name.split(".")[0] in OURS:
            there = layer(name)
            if there != here and there not in ALLOWED[here]:
                wrong.append(f"{module} ({here}) imports {name} ({there})")
    return wrong


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_arrows_run_one_way(module: str, path: Path) -> None:
    assert back_arrows(module, path) == []


@pytest.mark.parametrize(("module", "source"), [
    ("streams.x", "from paystream.cli import main"),
    ("streams.x", "from connectors.runner import SinkRunner"),
    ("ingress.x", "def f():\n    import streams.app"),
    ("paystream.core.x", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from streams.app import Worker"),
    ("paystream.core.x", "from paystream.commands import dlq"),
    ("schemas.x", "from paystream.core.settings import Settings"),
])
def test_a_back_arrow_is_caught(tmp_path: Path, module: str, source: str) -> None:
    path = tmp_path / "x.py"
    path.write_text(source + "\n")
    assert back_arrows(module, path)


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


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports (`from a.b import c` is a.b.c when that is a module)."""
    known = {module for module, _ in modules()}
    graph: dict[str, set[str]] = {}
    for module, path in modules():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                           for a in node.names]
            edges |= {t for t in targets if t in known and t != module}
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_in_any_package() -> None:
    assert cycles(import_graph()) == []


def test_a_circle_is_found() -> None:
    assert cycles({"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}, "a.w": {"a.x"}}) == [["a.x", "a.y", "a.z"]]
