"""deploy/k8s: the manifests parse, the overlays build, and everything they reference exists.

Two renderings are checked with the same rules: `kubectl kustomize` of each overlay (when
kubectl is installed; it carries kustomize), and a plain load of the base YAML with the
overlays' generated ConfigMap/Secret names (always, no tools needed). Probe paths are checked
against the routes the real ingress, worker and sink apps serve.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from paystream.core.settings import Settings
from tests.deploy.conftest import DEPLOY, load_yaml, load_yaml_documents

K8S = DEPLOY / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
ROLE_SECRETS = {"ingress": {"PAYSTREAM_STRIPE_WEBHOOK_SECRETS"}, "worker": {"PAYSTREAM_OPS_TOKEN"},
                "sink": {"PAYSTREAM_SINK_URL"}}
SETTINGS = {f"PAYSTREAM_{f.upper()}" for f in Settings.model_fields}


# Rendering -------------------------------------------------------------------------------------

def kubectl() -> str | None:
    return shutil.which("kubectl")


def render_with_kubectl(overlay: str, workdir: Path) -> list[dict[str, Any]]:
    tree = workdir / "k8s"
    shutil.copytree(K8S, tree)
    for example in (tree / "overlays" / overlay).glob("*.env.example"):
        example.with_name(example.name.removesuffix(".example")).write_text(example.read_text("utf-8"), "utf-8")
    binary = kubectl()
    assert binary is not None
    result = subprocess.run([binary, "kustomize", str(tree / "overlays" / overlay)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    import yaml

    return [d for d in yaml.safe_load_all(result.stdout) if d]


def env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text("utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def render_statically(overlay: str) -> list[dict[str, Any]]:
    """The base resources plus the generated ConfigMap and Secrets (unhashed names, literal/env values)."""
    base = load_yaml(K8S / "base" / "kustomization.yaml")
    docs = [d for name in base["resources"] for d in load_yaml_documents(K8S / "base" / name)]
    config: dict[str, str] = {}
    for generator in base.get("configMapGenerator", []):
        config.update(dict(item.split("=", 1) for item in generator.get("literals", [])))
    kustomization = load_yaml(K8S / "overlays" / overlay / "kustomization.yaml")
    for replicas in kustomization.get("replicas", []):
        for doc in docs:
            if doc["kind"] in WORKLOADS and doc["metadata"]["name"] == replicas["name"]:
                doc["spec"]["replicas"] = replicas["count"]
    for generator in kustomization.get("configMapGenerator", []):
        config.update(dict(item.split("=", 1) for item in generator.get("literals", [])))
    docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "paystream-config"}, "data": config})
    for generator in kustomization.get("secretGenerator", []):
        data = dict(item.split("=", 1) for item in generator.get("literals", []))
        for name in generator.get("envs", []):
            data.update(env_file(K8S / "overlays" / overlay / f"{name}.example"))
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": generator["name"]},
                     "stringData": data})
    return docs


@pytest.fixture(scope="module", params=[f"{o}:{how}" for o in OVERLAYS for how in ("kubectl", "static")])
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    overlay, how = request.param.split(":")
    if how == "kubectl":
        if kubectl() is None:
            pytest.skip("kubectl not installed (it carries kustomize); the static rendering is still checked")
        return render_with_kubectl(overlay, tmp_path_factory.mktemp(overlay))
    return render_statically(overlay)


# Helpers ---------------------------------------------------------------------------------------

def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def names(docs: list[dict[str, Any]], kind: str) -> set[str]:
    return {d["metadata"]["name"] for d in by_kind(docs, kind)}


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in docs:
        if doc.get("kind") in WORKLOADS:
            yield doc, doc["spec"]["template"]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def secret_data(doc: dict[str, Any]) -> dict[str, str]:
    decoded = {k: base64.b64decode(v).decode("utf-8") for k, v in (doc.get("data") or {}).items()}
    return {**decoded, **(doc.get("stringData") or {})}


def container_ports(template: dict[str, Any]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for container in template["spec"]["containers"]:
        for port in container.get("ports", []):
            ports[port.get("name", str(port["containerPort"]))] = port["containerPort"]
    return ports


# Served paths of the real apps -------------------------------------------------------------------

@pytest.fixture(scope="module")
def served_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Which probe paths each role's real app answers (anything but 404/405), by role."""
    import asyncio

    from connectors.metrics import MetricsServer, SinkMetrics
    from ingress import create_app
    from streams.app import create_worker

    candidates = {"/health", "/ready", "/metrics", "/healthz", "/livez", "/readyz", "/"}
    settings = Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path_factory.mktemp("apps"))
    worker = set(create_worker(settings).app.web.views)

    async def ingress_paths() -> set[str]:
        # ASGI in-process without the lifespan: nothing connects, /ready answers 503
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as http:
            return {p for p in candidates if (await http.get(p)).status_code not in (404, 405)}

    async def sink_paths() -> set[str]:
        server = MetricsServer(SinkMetrics(), host="127.0.0.1", port=0)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
                return {p for p in candidates if (await http.get(p)).status_code not in (404, 405)}
        finally:
            await server.stop()

    return {"ingress": asyncio.run(ingress_paths()), "worker": worker, "sink": asyncio.run(sink_paths())}


def test_served_paths_are_what_the_probes_expect(served_paths: dict[str, set[str]]) -> None:
    for role, paths in served_paths.items():
        assert {"/health", "/ready", "/metrics"} <= paths, role


# Tests -----------------------------------------------------------------------------------------

def test_every_manifest_parses() -> None:
    files = sorted(K8S.rglob("*.yaml"))
    assert len(files) >= 8
    for path in files:
        for doc in load_yaml_documents(path):
            assert isinstance(doc, dict), path
            assert "apiVersion" in doc and "kind" in doc, path
            if doc["kind"] != "Kustomization":
                assert doc.get("metadata", {}).get("name"), path


def test_kustomizations_list_existing_files() -> None:
    for kustomization in K8S.rglob("kustomization.yaml"):
        spec = load_yaml(kustomization)
        for resource in spec.get("resources", []):
            assert (kustomization.parent / resource).exists(), f"{kustomization}: {resource}"
        for patch in spec.get("patches", []):
            if "path" in patch:
                assert (kustomization.parent / patch["path"]).exists(), f"{kustomization}: {patch['path']}"
        for generator in spec.get("secretGenerator", []):
            for name in generator.get("envs", []):
                assert (kustomization.parent / f"{name}.example").exists(), f"{name}.example missing"
                ignore = (kustomization.parent / ".gitignore").read_text("utf-8")
                assert "*.env" in ignore, "secret env files must be git-ignored"


def test_the_required_objects_exist(rendered: list[dict[str, Any]]) -> None:
    kinds = {(d["kind"], d["metadata"]["name"].rsplit("-", 1)[0] if d["kind"] in ("ConfigMap", "Secret")
              and re.search(r"-[a-z0-9]{10}$", d["metadata"]["name"]) else d["metadata"]["name"]) for d in rendered}
    for expected in [("Deployment", "paystream-ingress"), ("HorizontalPodAutoscaler", "paystream-ingress"),
                     ("PodDisruptionBudget", "paystream-ingress"), ("StatefulSet", "paystream-worker"),
                     ("Service", "paystream-worker"), ("Deployment", "paystream-sink"),
                     ("ServiceMonitor", "paystream"), ("ConfigMap", "paystream-config"),
                     ("Secret", "paystream-ingress"), ("Secret", "paystream-worker"), ("Secret", "paystream-sink")]:
        assert expected in kinds, expected


def test_references_resolve(rendered: list[dict[str, Any]]) -> None:
    configmaps, secrets = names(rendered, "ConfigMap"), names(rendered, "Secret")
    accounts = names(rendered, "ServiceAccount") | {"default"}
    data = {("ConfigMap", d["metadata"]["name"]): d.get("data", {}) for d in by_kind(rendered, "ConfigMap")}
    data |= {("Secret", d["metadata"]["name"]): secret_data(d) for d in by_kind(rendered, "Secret")}
    for workload, template in pod_specs(rendered):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = template["spec"]
        assert spec.get("serviceAccountName", "default") in accounts, where
        volumes = {v["name"] for v in spec.get("volumes", [])}
        volumes |= {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps, where
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, where
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps, f"{where}: {source}"
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, f"{where}: {source}"
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    if key in ref:
                        assert ref[key]["key"] in data[(kind, ref[key]["name"])], f"{where}: {env}"
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{where}: volume {mount['name']}"


def test_ports_and_selectors_resolve(rendered: list[dict[str, Any]]) -> None:
    pods = [(w, t) for w, t in pod_specs(rendered)]
    services = by_kind(rendered, "Service")
    for service in services:
        selected = [(w, t) for w, t in pods if matches(service["spec"]["selector"], t["metadata"]["labels"])]
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for _, template in selected:
                ports = container_ports(template)
                assert target in ports or target in ports.values(), f"{service['metadata']['name']}: {target}"
    for workload, template in pods:
        spec = workload["spec"]
        assert matches(spec["selector"]["matchLabels"], template["metadata"]["labels"]), workload["metadata"]["name"]
        if workload["kind"] == "StatefulSet":
            headless = [s for s in services if s["metadata"]["name"] == spec["serviceName"]]
            assert headless and headless[0]["spec"].get("clusterIP") == "None"
    for budget in by_kind(rendered, "PodDisruptionBudget"):
        assert any(matches(budget["spec"]["selector"]["matchLabels"], t["metadata"]["labels"]) for _, t in pods)
    for hpa in by_kind(rendered, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        workload = next(w for w, _ in pods if w["kind"] == target["kind"] and w["metadata"]["name"] == target["name"])
        for container in workload["spec"]["template"]["spec"]["containers"]:
            assert container["resources"]["requests"]["cpu"], "CPU utilisation needs a CPU request"
        assert hpa["spec"]["minReplicas"] >= 1
    for monitor in by_kind(rendered, "ServiceMonitor"):
        selected = [s for s in services if matches(monitor["spec"]["selector"]["matchLabels"],
                                                   s["metadata"].get("labels", {}))]
        assert len(selected) == 3, "the ServiceMonitor must select the ingress, worker and sink Services"
        for endpoint in monitor["spec"]["endpoints"]:
            for service in selected:
                assert endpoint["port"] in {p.get("name") for p in service["spec"]["ports"]}, service["metadata"]
            assert endpoint["path"] == "/metrics"


def test_probes_point_at_served_paths(rendered: list[dict[str, Any]], served_paths: dict[str, set[str]]) -> None:
    checked = 0
    for workload, template in pod_specs(rendered):
        role = template["metadata"]["labels"]["app.kubernetes.io/component"]
        for container in template["spec"]["containers"]:
            ports = container_ports(template)
            assert container.get("readinessProbe") and container.get("livenessProbe"), workload["metadata"]["name"]
            assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
            assert container["livenessProbe"]["httpGet"]["path"] == "/health"
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe not in container:
                    continue
                get = container[probe]["httpGet"]
                assert get["path"] in served_paths[role], f"{role} {probe}: {get['path']} is not served"
                assert get["port"] in ports or get["port"] in ports.values(), f"{role} {probe}: port {get['port']}"
                port_number = ports.get(get["port"], get["port"])
                config = Settings()
                expected = {"ingress": config.ingress_port, "worker": config.worker_port,
                            "sink": config.sink_metrics_port}[role]
                assert port_number == expected, f"{role} listens on {expected}"
                checked += 1
    assert checked >= 8


def test_images_are_pinned(rendered: list[dict[str, Any]]) -> None:
    for _, template in pod_specs(rendered):
        for container in template["spec"]["containers"]:
            image = container["image"]
            if image == "paystream":  # the static rendering: the tag comes from kustomize `images`
                base = load_yaml(K8S / "base" / "kustomization.yaml")
                tags = [i["newTag"] for i in base["images"] if i["name"] == "paystream"]
                assert tags and re.search(r"\d", str(tags[0]))
                continue
            name, _, tag = image.rpartition(":")
            assert name and tag and tag != "latest" and re.search(r"\d", tag), image


def test_each_role_gets_valid_settings_and_only_its_own_secrets(rendered: list[dict[str, Any]]) -> None:
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in by_kind(rendered, "ConfigMap")}
    secrets = {d["metadata"]["name"]: secret_data(d) for d in by_kind(rendered, "Secret")}
    all_secret_keys = {key for data in secrets.values() for key in data}
    for _workload, template in pod_specs(rendered):
        role = template["metadata"]["labels"]["app.kubernetes.io/component"]
        container = template["spec"]["containers"][0]
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env.update(configmaps[source["configMapRef"]["name"]])
            if "secretRef" in source:
                env.update(secrets[source["secretRef"]["name"]])
        for item in container.get("env", []):
            env[item["name"]] = item.get("value", "")
        unknown = {k for k in env if k.startswith("PAYSTREAM_")} - SETTINGS
        assert not unknown, f"{role}: {unknown} are not paystream settings"
        assert ROLE_SECRETS[role] <= set(env), f"{role} lacks {ROLE_SECRETS[role] - set(env)}"
        foreign = (all_secret_keys - ROLE_SECRETS[role] - {"PAYSTREAM_STANDARD_WEBHOOK_SECRETS"}) & set(env)
        assert not foreign, f"{role} sees secrets it does not need: {foreign}"
        values = {k.removeprefix("PAYSTREAM_").lower(): v for k, v in env.items()
                  if k.startswith("PAYSTREAM_") and "$(" not in v}
        settings = Settings(**values)
        assert not settings.uses_embedded_broker and settings.kafka_bootstrap
        if role == "worker":
            assert settings.table_standby_replicas >= 0
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert str(settings.data_dir) in mounts, "the worker's RocksDB lives on its volume"
            names_env = {e["name"]: e for e in container["env"]}
            assert "POD_NAME" in names_env["PAYSTREAM_WORKER_ID"]["value"]
            assert "WEB_HOST" in names_env, "peers forward table lookups to the worker's stable DNS name"


def test_workers_are_a_statefulset_with_state_volume_and_standbys(rendered: list[dict[str, Any]]) -> None:
    (workers,) = by_kind(rendered, "StatefulSet")
    claims = workers["spec"]["volumeClaimTemplates"]
    assert [c["metadata"]["name"] for c in claims] == ["state"]
    assert claims[0]["spec"]["resources"]["requests"]["storage"]
    (config,) = by_kind(rendered, "ConfigMap")
    standby = int(config["data"]["PAYSTREAM_TABLE_STANDBY_REPLICAS"])
    if workers["spec"]["replicas"] > 1:
        assert standby >= 1, "several workers need standby replicas for a fast takeover"
    partitions = int(config["data"]["PAYSTREAM_PARTITIONS"])
    assert workers["spec"]["replicas"] <= partitions, "workers beyond the partition count idle"


def test_pods_are_locked_down(rendered: list[dict[str, Any]]) -> None:
    for workload, template in pod_specs(rendered):
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        assert spec.get("automountServiceAccountToken") is False
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
