#!/usr/bin/env python3
"""Container health check for the paystream image: probes the HTTP endpoint of the role it runs.

One image runs every role, so the check finds the `paystream <role>` process in /proc and asks
that role's port: ingress `PAYSTREAM_INGRESS_PORT` (8080), worker `PAYSTREAM_WORKER_PORT` (6066),
sink `PAYSTREAM_SINK_METRICS_PORT` (9108). `/health` by default (alive), `/ready` with `--ready`
(compose uses that for `depends_on: service_healthy`). A one-shot command (`sink migrate`,
`--help`) has nothing to probe and counts as healthy. Standard library only: the runtime image
has no curl.

Exit codes follow Docker: 0 healthy, 1 unhealthy.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

PORTS = {
    "ingress": ("PAYSTREAM_INGRESS_PORT", 8080),
    "worker": ("PAYSTREAM_WORKER_PORT", 6066),
    "sink": ("PAYSTREAM_SINK_METRICS_PORT", 9108),
}


def running_role(proc: Path = Path("/proc")) -> str | None:
    """The role of the first `paystream <role>` process found, or None."""
    for entry in sorted(proc.iterdir(), key=lambda p: p.name):
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode("utf-8", "replace") for a in argv if a]
        for index, arg in enumerate(args):
            name = arg.rsplit("/", 1)[-1]
            if name == "paystream" or (arg == "-m" and index + 1 < len(args) and args[index + 1] == "paystream"):
                rest = args[index + 1:] if name == "paystream" else args[index + 2:]
                roles = [a for a in rest if not a.startswith("-")]
                if roles:
                    role = roles[0]
                    if role == "sink" and len(roles) > 1 and roles[1] == "migrate":
                        return "sink-migrate"
                    return role
    return None


def probe(url: str, timeout_s: float) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - http://127.0.0.1 only
            return 200 <= response.status < 300, f"{response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, str(exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ready", action="store_true", help="probe /ready instead of /health")
    parser.add_argument("--role", choices=sorted(PORTS), help="skip the /proc lookup")
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    role = args.role or running_role()
    if role not in PORTS:
        sys.stdout.write(f"paystream-healthcheck: nothing to probe for role {role!r}\n")
        return 0
    env_name, default = PORTS[role]
    port = int(os.environ.get(env_name, default))
    path = "/ready" if args.ready else "/health"
    ok, detail = probe(f"http://127.0.0.1:{port}{path}", args.timeout)
    sys.stdout.write(f"paystream-healthcheck: {role} {path} on :{port}: {detail}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
