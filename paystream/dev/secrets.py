"""Development secrets, generated on first run and kept under the data dir (never committed)."""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from ingress.signing import PayPalDevSigner

__all__ = ["DevSecrets"]

DEV_PAYPAL_WEBHOOK_ID = "PAYSTREAMDEV"
DEV_STANDARD_SOURCE = "demo"


@dataclass(frozen=True)
class DevSecrets:
    stripe_secret: str
    standard_secret: str
    ops_token: str
    paypal_webhook_id: str = DEV_PAYPAL_WEBHOOK_ID
    standard_source: str = DEV_STANDARD_SOURCE

    @staticmethod
    def directory(data_dir: Path) -> Path:
        return data_dir / "dev"

    @classmethod
    def load_or_create(cls, data_dir: Path) -> DevSecrets:
        folder = cls.directory(data_dir)
        path = folder / "secrets.json"
        if path.is_file():
            return cls(**json.loads(path.read_text("utf-8")))
        folder.mkdir(parents=True, exist_ok=True)
        created = cls(
            stripe_secret="whsec_" + secrets.token_urlsafe(24),
            standard_secret="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
            ops_token=secrets.token_urlsafe(24),
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(created), indent=2), "utf-8")
        os.chmod(tmp, 0o600)
        tmp.replace(path)
        signer = PayPalDevSigner.generate()
        signer.save(folder)
        return created

    def paypal_signer(self, data_dir: Path) -> PayPalDevSigner:
        return PayPalDevSigner.load(self.directory(data_dir))

    def env(self, data_dir: Path) -> dict[str, str]:
        """The PAYSTREAM_* variables that make every process trust these secrets."""
        folder = self.directory(data_dir)
        signer = self.paypal_signer(data_dir)
        signer.install(data_dir / "paypal-certs", folder / "paypal-dev-ca.pem")
        return {
            "PAYSTREAM_STRIPE_WEBHOOK_SECRETS": self.stripe_secret,
            "PAYSTREAM_STANDARD_WEBHOOK_SECRETS": f"{self.standard_source}={self.standard_secret}",
            "PAYSTREAM_PAYPAL_WEBHOOK_ID": self.paypal_webhook_id,
            "PAYSTREAM_PAYPAL_TRUST_ROOTS_FILE": str(folder / "paypal-dev-ca.pem"),
            "PAYSTREAM_PAYPAL_CERT_CACHE_DIR": str(data_dir / "paypal-certs"),
            "PAYSTREAM_OPS_TOKEN": self.ops_token,
        }
