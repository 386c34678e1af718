"""`paystream sign`: print the signature headers for a body, with the dev secrets (used by examples/*.sh)."""

from __future__ import annotations

import sys
import time
import uuid

import click

from ingress.signing import sign_standard, sign_stripe
from paystream.core.settings import Settings
from paystream.dev.secrets import DevSecrets


@click.command()
@click.option("--provider", type=click.Choice(["stripe", "paypal", "standard"]), required=True)
@click.argument("body_file", type=click.File("rb"))
def sign(provider: str, body_file: click.utils.LazyFile) -> None:
    """Print `Header: value` lines that make BODY_FILE (or - for stdin) a valid delivery, signed now."""
    settings = Settings.from_env()
    data_dir = settings.data_dir.resolve()
    secrets = DevSecrets.load_or_create(data_dir)
    body: bytes = body_file.read()
    now = int(time.time())
    if provider == "stripe":
        headers = {"Stripe-Signature": sign_stripe(body, secrets.stripe_secret, now)}
    elif provider == "paypal":
        headers = secrets.paypal_signer(data_dir).headers(body, secrets.paypal_webhook_id)
    else:
        message_id = f"msg_{uuid.uuid4().hex}"
        headers = {"webhook-id": message_id, "webhook-timestamp": str(now),
                   "webhook-signature": sign_standard(body, secrets.standard_secret, message_id, now)}
    for name, value in headers.items():
        sys.stdout.write(f"{name}: {value}\n")
