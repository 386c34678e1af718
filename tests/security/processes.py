"""`paystream ingress` as a child process for the abuse tests, with its secrets and PayPal dev certificate."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from ingress.signing import PayPalDevSigner
from paystream.core.broker import free_port
from tests.fixtures.processes import ChildProcess


class IngressProcess(ChildProcess):
    """`paystream ingress`, started and ready in one call."""

    def start(self, timeout_s: float = 30.0) -> Self:
        super().start()
        return self.wait_ready(timeout_s)


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
    port = free_port()
    return IngressProcess("ingress", ["ingress", "--port", str(port)], env, port, log_path)
