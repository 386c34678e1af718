#!/usr/bin/env python3
"""`make sbom`: a CycloneDX SBOM (JSON, spec 1.6) of the installed, locked environment.

Runs `cyclonedx-py environment` on the virtualenv (this interpreter by default) with
pyproject.toml as the root component, then checks the result against constraints.txt: every
constrained package that is installed must be in the SBOM at exactly its pinned version, so
the SBOM describes the lock, not whatever drifted into the environment. Packages installed
without a pin are listed as a warning (they are in the SBOM too).

    python scripts/sbom.py [--output build/sbom.cdx.json] [--python PATH] [--allow-drift] [--no-validate]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(constraints: Path) -> dict[str, str]:
    result: dict[str, str] = {}
    for raw in constraints.read_text("utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            result[canonical(name.split("[", 1)[0])] = version.split(";", 1)[0].strip()
    return result


def cyclonedx(python: str, output: Path, *, validate: bool = True) -> None:
    binary = Path(sys.executable).parent / "cyclonedx-py"
    command = [str(binary)] if binary.exists() else [sys.executable, "-m", "cyclonedx_py"]
    command += ["environment", "--pyproject", str(ROOT / "pyproject.toml"), "--spec-version", "1.6",
                "--output-format", "JSON", "--output-reproducible", "--output-file", str(output),
                "--validate" if validate else "--no-validate", python]
    subprocess.run(command, check=True, cwd=ROOT)  # noqa: S603 - fixed tool, our arguments


def check(sbom: dict[str, object], locked: dict[str, str]) -> tuple[list[str], list[str]]:
    """(errors, warnings) of the SBOM against the lock."""
    components = {canonical(str(c["name"])): str(c.get("version", ""))  # type: ignore[index]
                  for c in sbom.get("components", [])}  # type: ignore[union-attr]
    errors = [f"{name}: installed {version}, constraints.txt pins {locked[name]}"
              for name, version in sorted(components.items()) if name in locked and locked[name] != version]
    unpinned = sorted(name for name in components if name not in locked)
    warnings = [f"installed without a pin in constraints.txt: {', '.join(unpinned)}"] if unpinned else []
    if not components:
        errors.append("the SBOM lists no components")
    return errors, warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "sbom.cdx.json")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the environment to describe")
    parser.add_argument("--constraints", type=Path, default=ROOT / "constraints.txt")
    parser.add_argument("--allow-drift", action="store_true", help="report version drift without failing")
    parser.add_argument("--no-validate", dest="validate", action="store_false",
                        help="skip the CycloneDX schema validation (about 15 s)")
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cyclonedx(args.python, args.output, validate=args.validate)
    sbom = json.loads(args.output.read_text("utf-8"))
    errors, warnings = check(sbom, pins(args.constraints))
    for warning in warnings:
        sys.stderr.write(f"sbom: warning: {warning}\n")
    for error in errors:
        sys.stderr.write(f"sbom: error: {error}\n")
    count = len(sbom.get("components", []))
    sys.stdout.write(f"sbom: {args.output} ({count} components, CycloneDX {sbom.get('specVersion')})\n")
    return 1 if errors and not args.allow_drift else 0


if __name__ == "__main__":
    sys.exit(main())
