"""Deployment fixtures: the repository's deploy files, and real paystream processes.

`pipeline_processes` starts `paystream ingress|worker|sink` as child processes (each in its
own session, logs in tmp_path) and kills every one of them at teardown, also after a failed
assertion or a kill -9 in the test. Nothing here needs Docker: the compose and Kubernetes files
are checked statically, the processes run natively against the embedded broker.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from paystream.core.broker import free_port
from tests.fixtures.apache_kafka import broker_env
from tests.fixtures.processes import ChildProcess

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = REPO / "docker-compose.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "paystream.json"
OPS_TOKEN = "deploy-test-ops-token-0123456789"
STRIPE_SECRET = "whsec_deploy_test_secret"

_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text("utf-8"))


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc is not None]


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose-style `${VAR}`, `${VAR:-default}` and `${VAR:?message}`; a missing required VAR raises."""
    env = env or {}

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        current = env.get(name)
        if op in (":-", "-"):
            return current if current not in (None, "") else arg
        if op in (":?", "?"):
            if current in (None, ""):
                raise KeyError(f"{name}: {arg}")
            return current
        return current or ""

    return _INTERPOLATION.sub(replace, value.replace("$$", "\0")).replace("\0", "$")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return data


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment` as a dict (compose accepts a mapping or a list of K=V)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


# Processes -------------------------------------------------------------------------------------

class ServiceProcess(ChildProcess):
    """One `paystream <role>` child of a deployment test."""

    def metrics_text(self) -> str:
        response = httpx.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        return response.text


@dataclass
class Pipeline:
    """Environment shared by the processes of one test, and the processes started so far."""

    base_env: dict[str, str]
    directory: Path
    started: list[ServiceProcess] = field(default_factory=list)

    def _start(self, role: str, args: list[str], port_var: str, **env: str) -> ServiceProcess:
        port = free_port()
        child_env = {**self.base_env, port_var: str(port), **env}
        index = sum(1 for p in self.started if p.name == role)
        handle = ServiceProcess(role, args, child_env, port, self.directory / f"{role}-{index}.log",
                                cwd=self.directory)
        self.started.append(handle)
        return handle.start()

    def ingress(self, **env: str) -> ServiceProcess:
        return self._start("ingress", ["ingress"], "PAYSTREAM_INGRESS_PORT", **env)

    def worker(self, **env: str) -> ServiceProcess:
        index = sum(1 for p in self.started if p.name == "worker")
        env.setdefault("PAYSTREAM_WORKER_ID", f"worker-{index}")
        return self._start("worker", ["worker"], "PAYSTREAM_WORKER_PORT", **env)

    def sink(self, **env: str) -> ServiceProcess:
        return self._start("sink", ["sink", "--migrate"], "PAYSTREAM_SINK_METRICS_PORT", **env)

    def stop_all(self) -> None:
        for handle in reversed(self.started):
            handle.stop(timeout_s=10)  # SIGTERM first: a clean stop saves the child's coverage data
        for handle in self.started:
            handle.kill()


def pipeline_env(bootstrap: str, data_dir: Path, *, prefix: str = "", partitions: int = 4,
                 embedded: bool = True) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("PAYSTREAM_")},
        "PAYSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        **broker_env(embedded=embedded),
        "PAYSTREAM_TOPIC_PREFIX": prefix,
        "PAYSTREAM_PARTITIONS": str(partitions),
        "PAYSTREAM_DATA_DIR": str(data_dir),
        "PAYSTREAM_SINK_URL": f"sqlite:///{data_dir / 'sink.db'}",
        "PAYSTREAM_STRIPE_WEBHOOK_SECRETS": STRIPE_SECRET,
        "PAYSTREAM_OPS_TOKEN": OPS_TOKEN,
        "PAYSTREAM_LOG_FORMAT": "console",
        "PAYSTREAM_LOG_LEVEL": "INFO",
        "PAYSTREAM_STREAM_BATCH_MS": "20",
        "PAYSTREAM_SINK_BATCH_MS": "50",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def pipeline_factory(tmp_path: Path) -> Iterator[Callable[..., Pipeline]]:
    """`pipeline_factory(bootstrap, prefix=..., partitions=...)`; every process is stopped at teardown."""
    made: list[Pipeline] = []

    def make(bootstrap: str, **kwargs: Any) -> Pipeline:
        directory = tmp_path / f"pipeline-{len(made)}"
        (directory / "data").mkdir(parents=True)
        pipeline = Pipeline(pipeline_env(bootstrap, directory / "data", **kwargs), directory)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.stop_all()


def wait_until(predicate: Callable[[], Any], timeout_s: float, *, interval_s: float = 0.3,
               message: str = "condition not met in time") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(interval_s)


# PromQL ----------------------------------------------------------------------------------------

PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
_PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
                 "group_right", "inf", "nan", "atan2"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords, labels and Grafana variables removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\$\{?\w+\}?", "", text)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][-+]?\d+)?[smhdwy]?\b", " ", text)
    found: set[str] = set()
    for match in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _PROMQL_WORDS:
            continue
        found.add(name)
    return found


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if isinstance(query, str) and variable.get("type") == "query":
            inner = re.search(r"label_values\((.*?)(,[^,)]*)?\)$", query)
            exprs.append(inner.group(1) if inner else query)
    return exprs


def alert_expressions(path: Path) -> list[str]:
    rules = load_yaml(path)
    return [str(rule["expr"]) for group in rules["groups"] for rule in group["rules"]]


def exported_names(families: Any) -> set[str]:
    """Every series name a scrape can contain for these metric families (`_total`, `_bucket`, … included)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("_sum", "_count", "_created", ""), "gauge": ("",), "untyped": ("",), "info": ("_info",),
                "gaugehistogram": ("_bucket", "_gsum", "_gcount"), "stateset": ("",), "unknown": ("",)}
    names: set[str] = set()
    for family in families:
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names
