"""docker-compose.yml, checked without a Docker engine.

What `docker compose config` would reject, and what it would not but we still want: every
long-running service has a health check and every dependency waits for it; one-shot jobs are
waited for with `service_completed_successfully`; secrets have no defaults; every image tag is
pinned; every `PAYSTREAM_*` setting the code reads is set here or documented in
deploy/README.md, and every one set here is a real setting with a valid value; the topic job
creates exactly the topic catalog.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from paystream.core.settings import Settings
from schemas.topics import ALL_SPECS
from tests.deploy.conftest import DEPLOY, REPO, compose, environment_of, interpolate

SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "healthcheck", "depends_on", "volumes", "ports",
    "expose", "networks", "hostname", "restart", "init", "read_only", "tmpfs", "security_opt", "cap_drop",
    "labels", "profiles", "stop_grace_period", "deploy", "user", "working_dir",
}
DEPENDENCY_CONDITIONS = {"service_healthy", "service_completed_successfully"}
SECRETS = {"PAYSTREAM_STRIPE_WEBHOOK_SECRETS", "PAYSTREAM_OPS_TOKEN", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
ROLE_PORTS = {"ingress": "PAYSTREAM_INGRESS_PORT", "worker": "PAYSTREAM_WORKER_PORT",
              "sink": "PAYSTREAM_SINK_METRICS_PORT"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return compose()


@pytest.fixture(scope="module")
def services(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = spec["services"]
    return result


def is_job(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "")) == "no"


def paystream_role(service: dict[str, Any]) -> str | None:
    image = str(service.get("image", ""))
    command = service.get("command") or []
    if image.startswith("paystream:") and command:
        return str(command[0])
    return None


def all_strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (*all_strings(key), *all_strings(value))]
    if isinstance(node, list):
        return [s for item in node for s in all_strings(item)]
    return []


def test_top_level_shape(spec: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    assert set(spec) <= {"name", "services", "volumes", "networks", "secrets", "configs"} | {
        k for k in spec if k.startswith("x-")}
    assert "version" not in spec, "the Compose Specification has no version key"
    for name, service in services.items():
        assert re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name), name
        unknown = set(service) - SERVICE_KEYS
        assert not unknown, f"{name}: unexpected keys {unknown} (typo?)"
        assert "image" in service, f"{name} has no image"


def test_the_stack_has_what_the_design_asks_for(services: dict[str, dict[str, Any]]) -> None:
    kafka = [s for s in services.values() if str(s.get("image", "")).startswith("apache/kafka:") and not is_job(s)]
    assert len(kafka) == 3
    for broker in kafka:
        env = environment_of(broker)
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft mode"
        assert len(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == 3
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
    node_ids = sorted(environment_of(b)["KAFKA_NODE_ID"] for b in kafka)
    assert node_ids == ["1", "2", "3"]
    roles = [paystream_role(s) for s in services.values() if not s.get("profiles")]
    assert roles.count("ingress") == 2
    assert roles.count("worker") == 2
    assert roles.count("sink") == 1
    images = " ".join(str(s.get("image")) for s in services.values())
    for expected in ("schema-registry", "postgres:", "prom/prometheus:", "grafana/grafana:", "haproxy:"):
        assert expected in images


def test_every_service_has_a_health_check_or_is_a_job(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if is_job(service):
            assert service.get("labels", {}).get("org.paystream.job") == "true", f"{name}: label one-shot jobs"
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no health check"
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{name}: healthcheck.{key}"


def test_paystream_health_checks_probe_the_role_port(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        role = paystream_role(service)
        if role is None:
            continue
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "/usr/local/bin/paystream-healthcheck"], name
        assert "--ready" in test, f"{name}: compose health gates depends_on, so it probes /ready"
        env = environment_of(service)
        assert ROLE_PORTS[role] in env, f"{name}: the health check reads {ROLE_PORTS[role]}"
        assert env[ROLE_PORTS[role]] in service.get("expose", []), f"{name}: expose the probed port"


def test_dependencies_name_real_services_and_wait_for_them(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: use the long depends_on form with a condition"
        for target, options in depends.items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert target != name
            condition = options.get("condition")
            assert condition in DEPENDENCY_CONDITIONS, f"{name} -> {target}: condition {condition}"
            expected = "service_completed_successfully" if is_job(services[target]) else "service_healthy"
            assert condition == expected, f"{name} -> {target}: {condition}, expected {expected}"
            assert not services[target].get("profiles") or service.get("profiles"), \
                f"{name} depends on {target}, which only runs with a profile"


def test_dependencies_have_no_cycle(services: dict[str, dict[str, Any]]) -> None:
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == "done":
            return
        assert state.get(node) != "visiting", f"dependency cycle: {' -> '.join([*path, node])}"
        state[node] = "visiting"
        for target in services[node].get("depends_on", {}):
            visit(target, [*path, node])
        state[node] = "done"

    for name in services:
        visit(name, [])


def test_every_image_tag_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = interpolate(str(service["image"]))
        reference = image.split("@", 1)[0]
        last = reference.rsplit("/", 1)[-1]
        assert ":" in last or "@sha256:" in image, f"{name}: {image} has no tag"
        tag = last.split(":", 1)[1]
        assert tag and tag != "latest", f"{name}: {image} is not pinned"
        assert re.search(r"\d", tag), f"{name}: tag {tag!r} names no version"


def test_secrets_are_required_not_defaulted(spec: dict[str, Any]) -> None:
    text = (REPO / "docker-compose.yml").read_text("utf-8")
    for secret in SECRETS:
        uses = re.findall(r"\$\{" + secret + r"(:?[-?])?([^}]*)\}", text)
        assert uses, f"{secret} is not used"
        for op, message in uses:
            assert op == ":?", f"${{{secret}}} must be written ${{{secret}:?message}}"
            assert len(message.strip()) > 10, f"{secret}: say what to set"
    with pytest.raises(KeyError, match="PAYSTREAM_STRIPE_WEBHOOK_SECRETS"):
        interpolate(environment_of(spec["services"]["ingress-1"])["PAYSTREAM_STRIPE_WEBHOOK_SECRETS"], {})


def test_volumes_for_kafka_postgres_and_rocksdb(spec: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(spec.get("volumes") or {})
    mounts: dict[str, str] = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
                mounts[source] = target
            else:
                assert (REPO / source).exists(), f"{name} mounts missing file {source}"
    assert {mounts[f"kafka-{n}-data"] for n in (1, 2, 3)} == {"/var/lib/kafka/data"}
    assert mounts["postgres-data"] == "/var/lib/postgresql/data"
    for name, service in services.items():
        if paystream_role(service) == "worker":
            env = environment_of(service)
            own = [v for v in service["volumes"] if v.endswith(":/var/lib/paystream")]
            assert len(own) == 1 and env["PAYSTREAM_DATA_DIR"] == "/var/lib/paystream", name
            assert env.get("PAYSTREAM_WORKER_ID") == service["hostname"] == name, name
    state_volumes = [v for s in services.values() if paystream_role(s) == "worker" for v in s["volumes"]]
    assert len(state_volumes) == len(set(state_volumes)), "two workers share a RocksDB volume"


def test_topic_job_creates_the_catalog() -> None:
    script = (DEPLOY / "kafka" / "create-topics.sh").read_text("utf-8")
    listed = dict(re.findall(r'^\s*"([a-z0-9.-]+)\|(compact|delete)"$', script, re.MULTILINE))
    assert listed == {spec.name: "compact" if spec.compacted else "delete" for spec in ALL_SPECS}
    assert listed["payments.state.v1"] == "compact"
    assert listed["payments.reconciliation.v1"] == "compact"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_topic_job_runs_kafka_topics_with_the_right_arguments(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    stub = tmp_path / "kafka-topics.sh"
    stub.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n'
                    'if [[ "$*" == *--list* ]]; then echo payments.dlq.v1; fi\n'
                    'if [[ "$*" == *--describe* ]]; then for i in 1 2 3 4 5 6 7 8; do '
                    'echo "	Topic: payments.dlq.v1	Partition: $i	Leader: 1"; done; fi\n')
    stub.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "KAFKA_TOPICS_BIN": str(stub), "BOOTSTRAP": "k:9092", "PARTITIONS": "8",
           "REPLICATION_FACTOR": "3", "MIN_INSYNC_REPLICAS": "2", "TOPIC_PREFIX": ""}
    result = subprocess.run(["bash", str(DEPLOY / "kafka" / "create-topics.sh")], env=env, capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    creates = [line for line in calls.read_text().splitlines() if "--create" in line]
    assert len(creates) == len(ALL_SPECS) - 1  # the DLQ "exists"
    for line in creates:
        assert "--partitions 8 --replication-factor 3" in line
        assert "--config min.insync.replicas=2" in line
    state = next(line for line in creates if "--topic payments.state.v1 " in line)
    assert "cleanup.policy=compact" in state
    env["PARTITIONS"] = "12"  # an existing topic with another partition count fails the job
    result = subprocess.run(["bash", str(DEPLOY / "kafka" / "create-topics.sh")], env=env, capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 1 and "not changing it" in result.stderr


def test_every_setting_is_set_or_documented(services: dict[str, dict[str, Any]]) -> None:
    readme = (DEPLOY / "README.md").read_text("utf-8")
    set_somewhere = {key for s in services.values() for key in environment_of(s)}
    for field in Settings.model_fields:
        name = f"PAYSTREAM_{field.upper()}"
        assert name in set_somewhere or f"`{name}`" in readme, f"{name} is neither set in compose nor documented"
        assert f"`{name}`" in readme, f"{name} is missing from the settings table in deploy/README.md"


def test_every_paystream_variable_is_a_real_setting_with_a_valid_value(
        services: dict[str, dict[str, Any]]) -> None:
    known = {f"PAYSTREAM_{field.upper()}" for field in Settings.model_fields}
    dummy = {"PAYSTREAM_STRIPE_WEBHOOK_SECRETS": "whsec_a,whsec_b", "PAYSTREAM_OPS_TOKEN": "x" * 24,
             "POSTGRES_PASSWORD": "pw"}
    checked = 0
    for name, service in services.items():
        env = environment_of(service)
        settings_env = {k: interpolate(v, dummy) for k, v in env.items() if k.startswith("PAYSTREAM_")}
        unknown = set(settings_env) - known
        assert not unknown, f"{name} sets {unknown}, which paystream does not read (typo?)"
        if paystream_role(service) is None:
            continue
        values = {k.removeprefix("PAYSTREAM_").lower(): v for k, v in settings_env.items()}
        settings = Settings(**values)  # the same validation `Settings.from_env()` applies in the container
        assert settings.kafka_bootstrap and not settings.uses_embedded_broker
        assert settings.replication_factor == 3
        assert settings.schema_registry_url
        checked += 1
    assert checked >= 5


def test_processes_agree_on_ports_with_the_lb_and_prometheus(services: dict[str, dict[str, Any]]) -> None:
    haproxy = (DEPLOY / "haproxy" / "haproxy.cfg").read_text("utf-8")
    prometheus = (DEPLOY / "prometheus" / "prometheus.yml").read_text("utf-8")
    for name, service in services.items():
        role = paystream_role(service)
        if role is None:
            continue
        port = environment_of(service)[ROLE_PORTS[role]]
        aliases = service.get("networks", {}).get("default", {}).get("aliases", [])
        if role == "ingress":
            assert aliases == ["ingress"], name
            assert f"ingress:{port} check" in haproxy
        if role == "worker":
            assert aliases == ["worker"], name
            assert f"names: [worker]\n        type: A\n        port: {port}" in prometheus
        if role == "sink":
            assert f'targets: ["{name}:{port}"]' in prometheus
    assert "option httpchk GET /ready" in haproxy


def test_documented_secret_example_covers_every_required_variable() -> None:
    example = (DEPLOY / "compose.env.example").read_text("utf-8")
    text = (REPO / "docker-compose.yml").read_text("utf-8")
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    assert required == SECRETS
    for name in required:
        assert re.search(rf"^{name}=", example, re.MULTILINE), f"{name} missing from deploy/compose.env.example"


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed (Debian package haproxy)")
def test_haproxy_config_is_valid() -> None:
    result = subprocess.run(["haproxy", "-c", "-f", str(DEPLOY / "haproxy" / "haproxy.cfg")], capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
