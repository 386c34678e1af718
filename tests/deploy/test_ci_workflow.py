""".github/workflows/ci.yml cannot run here; these checks keep it in step with .ci/run and the Makefile."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import REPO, load_yaml

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(WORKFLOW)
    return data


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text("utf-8")
    return {m.group(1) for m in re.finditer(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.MULTILINE)}


def run_lines(job: dict[str, Any]) -> list[str]:
    return [line.strip() for step in job["steps"] for line in str(step.get("run", "")).splitlines() if line.strip()]


def test_triggers_and_permissions(workflow: dict[str, Any]) -> None:
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert "push" in triggers and "pull_request" in triggers
    assert workflow["permissions"] == {"contents": "read"}


def test_check_and_test_on_python_311_and_312_with_postgres(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["test"]
    assert job["strategy"]["matrix"]["python"] == ["3.11", "3.12"]
    setup = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/setup-python@"))
    assert setup["with"]["python-version"] == "${{ matrix.python }}"
    lines = run_lines(job)
    assert "make check" in lines and "make test" in lines
    assert lines.index("make check") < lines.index("make test")
    assert "services" not in job, "PostgreSQL is the job's own cluster: the fault tests stop and start it"
    assert any(str(s.get("uses", "")).startswith("actions/setup-java@") for s in job["steps"])
    for script in ("ensure_postgres.sh", "ensure_tools.sh", "ensure_browser.sh"):
        assert any(script in line and line.startswith("sudo") for line in lines), script
        assert (REPO / "scripts" / script).exists()
    conftest = (REPO / "tests" / "conftest.py").read_text("utf-8")
    default_url = re.search(r'"(postgresql://[^"]+)"', conftest)
    assert default_url and job["env"]["PAYSTREAM_TEST_POSTGRES_URL"] == default_url.group(1)
    ensure = (REPO / "scripts" / "ensure_postgres.sh").read_text("utf-8")
    assert f"DB={default_url.group(1).rsplit('/', 1)[1]}" in ensure


def test_runs_what_ci_run_runs(workflow: dict[str, Any]) -> None:
    ci_run = (REPO / ".ci" / "run").read_text("utf-8")
    commands = [line.strip() for line in ci_run.splitlines() if line.strip().startswith("make ")]
    assert commands, ".ci/run runs no make target?"
    lines = run_lines(workflow["jobs"]["test"])
    for command in commands:
        assert command in lines, f".ci/run runs `{command}`; the workflow must too"


def test_every_make_target_exists(workflow: dict[str, Any]) -> None:
    targets = make_targets()
    used = {m for job in workflow["jobs"].values() for line in run_lines(job)
            for m in re.findall(r"\bmake\s+([\w.-]+)", line)}
    assert {"check", "test", "sbom"} <= used
    missing = used - targets
    assert not missing, f"the workflow runs make targets the Makefile does not define: {sorted(missing)}"


def test_image_build_uses_the_dockerfile(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["image"]
    build = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("docker/build-push-action@"))
    assert build["with"]["file"] == "deploy/Dockerfile"
    assert build["with"]["context"] == "."
    assert (REPO / build["with"]["file"]).exists()


def test_sbom_is_uploaded_from_where_the_script_writes_it(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["sbom"]
    upload = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    script = (REPO / "scripts" / "sbom.py").read_text("utf-8")
    default = re.search(r'default=ROOT / "build" / "sbom.cdx.json"', script)
    assert default and upload["with"]["path"] == "build/sbom.cdx.json"
    assert upload["with"]["if-no-files-found"] == "error"


def test_actions_and_images_are_pinned(workflow: dict[str, Any]) -> None:
    for name, job in workflow["jobs"].items():
        assert job.get("timeout-minutes"), f"{name}: set a timeout"
        for step in job["steps"]:
            uses = step.get("uses")
            if uses:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", uses), uses
        for service in job.get("services", {}).values():
            assert not str(service["image"]).endswith(":latest") and ":" in str(service["image"])


def test_workflow_files_are_all_checked() -> None:
    assert sorted(p.name for p in Path(WORKFLOW.parent).glob("*.y*ml")) == ["ci.yml"]


def recipe(target: str) -> str:
    text = (REPO / "Makefile").read_text("utf-8")
    match = re.search(rf"^{re.escape(target)}\s*:[^\n]*\n((?:\t[^\n]*\n?)*)", text, re.MULTILINE)
    assert match, f"the Makefile has no `{target}` target"
    return match.group(1)


@pytest.mark.parametrize(("target", "script"), [("sbom", "scripts/sbom.py"), ("docs", "scripts/export_openapi.py")])
def test_supply_chain_targets_run_the_scripts(target: str, script: str) -> None:
    assert script in recipe(target)
    assert (REPO / script).exists()
