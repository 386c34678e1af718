"""`paystream ingress` as a child process: start, wait, measure memory, stop (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ingress.signing import PayPalDevSigner
from paystream.broker import free_port


@dataclass
class IngressProcess:
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> IngressProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "paystream", "ingress", "--port", str(self.port)], env=self.env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"ingress exited ({self.process.returncode}):\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"ingress not ready in {timeout_s}s:\n{self.tail()}")

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM (the peak resident set) of the child, from /proc."""
        assert self.process is not None
        values = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
        return values

    def stop(self, timeout_s: float = 15.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""


def ingress_env(base: dict[str, str], data_dir: Path, *, stripe_secret: str, standard_secret: str,
                paypal_webhook_id: str, signer: PayPalDevSigner) -> dict[str, str]:
    """`base` (a worker env of the stream fixtures: broker, topics) plus the ingress's secrets, JSON logs,
    and the PayPal dev signer's certificate in the cache and its CA as a trust root (no network)."""
    certs, roots = data_dir / "paypal-certs", data_dir / "paypal-dev-ca.pem"
    signer.install(certs, roots)
    return {
        **base,
        "PAYSTREAM_STRIPE_WEBHOOK_SECRETS": stripe_secret,
        "PAYSTREAM_STANDARD_WEBHOOK_SECRETS": f"acme={standard_secret}",
        "PAYSTREAM_PAYPAL_WEBHOOK_ID": paypal_webhook_id,
        "PAYSTREAM_PAYPAL_CERT_CACHE_DIR": str(certs),
        "PAYSTREAM_PAYPAL_TRUST_ROOTS_FILE": str(roots),
        "PAYSTREAM_LOG_FORMAT": "json",
        "PAYSTREAM_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }


def new_ingress(env: dict[str, str], log_path: Path) -> IngressProcess:
    return IngressProcess(env, free_port(), log_path)
