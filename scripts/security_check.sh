#!/usr/bin/env bash
# Static security checks for `make check`:
#   1. bandit over the packages: fails on any HIGH severity finding (medium/low are listed, and
#      the accepted ones are explained in docs/security.md);
#   2. pip-audit of the pinned dependency set (constraints.txt) against PyPI's advisory data,
#      when that source answers: with no usable source it says so and does not fail.
# Usage: scripts/security_check.sh   (VENV=path overrides .venv)
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PACKAGES=(paystream ingress streams schemas connectors)
# Advisories accepted after review (ids as pip-audit prints them); each is explained in docs/security.md.
PIP_AUDIT_IGNORE=()

status=0

echo "== bandit (fails on HIGH severity) =="
if [[ ! -x "$VENV/bin/bandit" ]]; then
    echo "bandit is not installed in $VENV (pip install bandit); cannot run the static check" >&2
    exit 2
fi
# everything from LOW up, for the record
"$VENV/bin/bandit" -q -r "${PACKAGES[@]}" --severity-level low --format custom \
    --msg-template '{relpath}:{line}: {test_id} [{severity}/{confidence}] {msg}' --exit-zero || true
if ! "$VENV/bin/bandit" -q -r "${PACKAGES[@]}" --severity-level high --confidence-level low; then
    echo "bandit: HIGH severity findings above; fix them or justify them in docs/security.md" >&2
    status=1
else
    echo "bandit: no HIGH severity findings"
fi

echo
echo "== pip-audit (pinned dependencies in constraints.txt) =="
if [[ ! -x "$VENV/bin/pip-audit" ]]; then
    echo "NOTE: pip-audit is not installed in $VENV; dependency audit skipped"
    exit "$status"
fi
ignore_args=()
for id in "${PIP_AUDIT_IGNORE[@]}"; do ignore_args+=(--ignore-vuln "$id"); done
report="$(mktemp)"
errors="$(mktemp)"
trap 'rm -f "$report" "$errors"' EXIT
set +e
"$VENV/bin/pip-audit" -r constraints.txt --no-deps --disable-pip --progress-spinner off --timeout 20 \
    --format json ${ignore_args[@]+"${ignore_args[@]}"} >"$report" 2>"$errors"
audit_rc=$?
set -e
"$VENV/bin/python" - "$report" "$errors" "$audit_rc" <<'PY' || status=1
import json
import sys

report, errors, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    with open(report) as handle:
        deps = json.load(handle)["dependencies"]
except (OSError, ValueError, KeyError):
    tail = open(errors).read().strip().splitlines()[-3:]
    print("NOTE: pip-audit could not reach its vulnerability source (PyPI advisory data); "
          "dependencies NOT audited here.")
    print("      " + "\n      ".join(tail))
    sys.exit(0)
audited = [d for d in deps if "skip_reason" not in d]
vulnerable = [d for d in audited if d.get("vulns")]
if not audited:
    print(f"NOTE: the vulnerability source answered but knew none of the {len(deps)} pinned packages "
          "(a partial package mirror?); dependencies NOT audited here.")
    sys.exit(0)
skipped = len(deps) - len(audited)
print(f"pip-audit: audited {len(audited)} of {len(deps)} pinned packages"
      + (f" ({skipped} unknown to the source)" if skipped else ""))
for dep in vulnerable:
    for vuln in dep["vulns"]:
        fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
        print(f"  {dep['name']} {dep['version']}: {vuln['id']} (fixed in: {fixes})")
if vulnerable:
    print("pip-audit: known vulnerabilities above; upgrade, or accept one in docs/security.md and "
          "PIP_AUDIT_IGNORE")
    sys.exit(1)
print("pip-audit: no known vulnerabilities")
PY
exit "$status"
