"""Prometheus and Grafana files, checked without running them.

The dashboard and the alerts query only metric names the code defines (instantiated here; the
running-pipeline check is test_pipeline_metrics.py), their PromQL parses (promtool, when
installed), the dashboard uses the provisioned datasource, and the scrape jobs match the ports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.deploy.conftest import (
    DASHBOARD,
    DEPLOY,
    PROMETHEUS_SYNTHETIC,
    alert_expressions,
    compose,
    dashboard_expressions,
    exported_names,
    load_yaml,
    promql_metric_names,
)

PROMETHEUS = DEPLOY / "prometheus"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text("utf-8"))
    return data


def defined_metric_names() -> set[str]:
    """Every series name the code's metric classes (and Faust's sensor) define."""
    from faust.sensors.prometheus import FaustMetrics

    from connectors.metrics import SinkMetrics
    from ingress.metrics import IngressMetrics
    from streams.metrics import WorkerMetrics
    from streams.reconcile.aggregate import ReconcileMetrics

    registries = [IngressMetrics().registry, SinkMetrics().registry]
    worker = CollectorRegistry()
    WorkerMetrics(worker)
    ReconcileMetrics(worker)
    FaustMetrics.create(worker, "paystream_worker")  # the app id with an empty topic prefix
    registries.append(worker)
    return {name for registry in registries for name in exported_names(registry.collect())}


def test_promql_name_extraction() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, provider) '
            '(rate(a_seconds_bucket{provider=~"s.*"}[$__rate_interval])))'
            ' / clamp_min(sum(rate(b_total[5m])), 1e-9) + on (topic) group_left max(c_gauge offset 5m) and d')
    assert promql_metric_names(expr) == {"a_seconds_bucket", "b_total", "c_gauge", "d"}


def test_dashboard_shape(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"] == "paystream"
    datasources = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    uid = datasources["datasources"][0]["uid"]
    ids: set[int] = set()
    occupied: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert panel["id"] not in ids
        ids.add(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        cells = {(grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])}
        assert not cells & occupied, f"panel {panel['title']} overlaps another"
        occupied |= cells
        if panel["type"] in ("row", "text"):
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            assert target["expr"].strip()


def test_dashboard_covers_what_operators_need(dashboard: dict[str, Any]) -> None:
    text = " ".join(dashboard_expressions(dashboard))
    for needed in ("paystream_ingress_requests_total", "paystream_ingress_request_seconds_bucket",
                   "paystream_ingress_verification_failures_total", "paystream_worker_ingress_to_state_seconds_bucket",
                   "paystream_sink_consumer_lag", "paystream_worker_topic_partition_end_offset",
                   "paystream_worker_dead_letters_total", 'verdict="duplicate"', "paystream_sink_rows_written_total",
                   "paystream_worker_reconciliation_anomalies_total"):
        assert needed in text, needed
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(paystream_ingress_request_seconds_bucket" in text


def test_dashboard_and_alerts_query_only_defined_metrics(dashboard: dict[str, Any]) -> None:
    defined = defined_metric_names() | PROMETHEUS_SYNTHETIC
    for expr in [*dashboard_expressions(dashboard), *alert_expressions(PROMETHEUS / "alerts.yml")]:
        unknown = promql_metric_names(expr) - defined
        assert not unknown, f"{unknown} in {expr!r} is not defined by paystream"


def test_prometheus_scrapes_every_role_on_its_port() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["paystream-ingress"]["dns_sd_configs"][0] == {"names": ["ingress"], "type": "A", "port": 8080,
                                                             "refresh_interval": "15s"}
    assert jobs["paystream-worker"]["dns_sd_configs"][0]["port"] == 6066
    assert jobs["paystream-sink"]["static_configs"][0]["targets"] == ["sink:9108"]
    services = compose()["services"]
    assert "sink" in services
    mounted = {v.split(":")[1] for v in services["prometheus"]["volumes"]}
    for rule_file in config["rule_files"]:
        assert Path(rule_file).parent.as_posix() in mounted
        assert (PROMETHEUS / Path(rule_file).name).exists()
    grafana_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "paystream.yml")
    path = provider["providers"][0]["options"]["path"]
    assert grafana_mounts[path] == "./deploy/grafana/dashboards"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_accepts_config_rules_and_dashboard_queries(tmp_path: Path, dashboard: dict[str, Any]) -> None:
    config = (PROMETHEUS / "prometheus.yml").read_text("utf-8").replace("/etc/prometheus/", "")
    (tmp_path / "prometheus.yml").write_text(config, "utf-8")
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    records = [{"record": f"dashboard:query_{n}", "expr": expr.replace("$__rate_interval", "5m")}
               for n, expr in enumerate(dashboard_expressions(dashboard))]
    (tmp_path / "dashboard-rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard",
                                                                                  "rules": records}]}), "utf-8")
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"],
                 ["check", "rules", "dashboard-rules.yml"]):
        result = subprocess.run(["promtool", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 0, result.stdout + result.stderr
