"""`paystream send`: sign and post realistic webhook sequences to a running ingress (dev secrets)."""

from __future__ import annotations

import asyncio
import random

import click

from paystream.core.settings import Settings
from paystream.dev.scenarios import Delivery, scenario
from paystream.dev.secrets import DevSecrets
from paystream.dev.sender import Sender, Signer, storm


@click.command()
@click.option("--provider", type=click.Choice(["stripe", "paypal", "all"]), default="all", show_default=True)
@click.option("--scenario", "name", type=click.Choice(["checkout", "refund", "dispute", "storm"]),
              default="checkout", show_default=True, help="storm = every scenario, duplicated and shuffled")
@click.option("--count", type=int, default=10, show_default=True, help="payments per provider")
@click.option("--rate", type=float, default=None, help="requests per second (default: as fast as possible)")
@click.option("--url", default=None, help="ingress base URL (default http://127.0.0.1:PAYSTREAM_INGRESS_PORT)")
@click.option("--currency", default="USD", show_default=True)
@click.option("--seed", type=int, default=None, help="make the run repeatable")
def send(provider: str, name: str, count: int, rate: float | None, url: str | None, currency: str,
         seed: int | None) -> None:
    """Sign and post payment stories (Stripe, PayPal with the dev certificate) to the ingress."""
    settings = Settings.from_env()
    data_dir = settings.data_dir.resolve()
    secrets = DevSecrets.load_or_create(data_dir)
    signer = Signer(stripe_secret=secrets.stripe_secret, paypal=secrets.paypal_signer(data_dir),
                    paypal_webhook_id=secrets.paypal_webhook_id, standard_secret=secrets.standard_secret,
                    standard_source=secrets.standard_source)
    rng = random.Random(seed)  # noqa: S311 - test data
    providers = ["stripe", "paypal"] if provider == "all" else [provider]
    stories = ["checkout", "refund", "dispute"] if name == "storm" else [name]
    deliveries: list[Delivery] = []
    for _ in range(count):
        for p in providers:
            deliveries += scenario(rng.choice(stories), p, currency=currency, rng=rng, amount=rng.randint(100, 90_000))
    if name == "storm":
        deliveries = storm(deliveries, rng)
    base_url = url or f"http://127.0.0.1:{settings.ingress_port}"
    sender = Sender(base_url, signer, rate=rate)
    with click.progressbar(length=len(deliveries), label=f"posting to {base_url}", file=None) as bar:
        report = asyncio.run(sender.send(deliveries, on_progress=bar.update))
    click.echo(report.summary())
    if report.failed:
        raise SystemExit(1)
