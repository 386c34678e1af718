"""Every metric the Grafana dashboard and the alerts query is exported by a running pipeline.

Broker, ingress, worker and sink run as real processes (as in compose, minus Docker), with an
empty topic prefix so Faust's series carry their production names. A webhook is posted with
the shell snippet from deploy/README.md (so the documented curl + openssl signing provably
works), a forged one is rejected, the payment reaches the sink's table, and then all three
/metrics endpoints are scraped.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingress.signing import sign_stripe
from paystream.core.broker import EmbeddedBroker
from schemas.topics import TopicCatalog, ensure_topics
from tests.deploy.conftest import (
    DASHBOARD,
    DEPLOY,
    PROMETHEUS_SYNTHETIC,
    STRIPE_SECRET,
    Pipeline,
    ServiceProcess,
    alert_expressions,
    dashboard_expressions,
    exported_names,
    promql_metric_names,
    wait_until,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]


def readme_snippet(name: str) -> str:
    text = (DEPLOY / "README.md").read_text("utf-8")
    match = re.search(rf"<!-- snippet: {re.escape(name)}.*?-->\s*```bash\n(.*?)```", text, re.DOTALL)
    assert match, f"snippet {name} not found in deploy/README.md"
    return match.group(1)


def post_with_readme_snippet(ingress: ServiceProcess) -> str:
    """Run the README's signing snippet against the ingress; returns the payment id it sent."""
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "PAYSTREAM_URL": ingress.url,
           "PAYSTREAM_STRIPE_WEBHOOK_SECRETS": f"{STRIPE_SECRET},whsec_previous_secret"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_snippet("send-webhook")], env=env,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    reply = json.loads(result.stdout.splitlines()[0])
    assert reply["status"] == "accepted" and reply["event_key"].startswith("stripe:evt_readme_")
    return result.stdout.split("payment id: ")[1].strip()


def post_with_python(ingress: ServiceProcess) -> str:
    now = int(time.time())
    payment = f"pi_metrics_{now}"
    body = json.dumps({"id": f"evt_metrics_{now}", "object": "event", "created": now, "livemode": False,
                       "type": "payment_intent.succeeded",
                       "data": {"object": {"id": payment, "object": "payment_intent", "amount": 4200,
                                           "currency": "eur", "status": "succeeded", "created": now,
                                           "amount_received": 4200}}}).encode()
    response = httpx.post(f"{ingress.url}/webhooks/stripe", content=body, timeout=10, headers={
        "Content-Type": "application/json", "Stripe-Signature": sign_stripe(body, STRIPE_SECRET, now)})
    assert response.status_code == 200, response.text
    return payment


def scrape(process: ServiceProcess) -> set[str]:
    return exported_names(text_string_to_metric_families(process.metrics_text()))


def payment_row(db: Path, payment_id: str) -> Any:
    if not db.exists():
        return None
    with sqlite3.connect(db) as connection:
        try:
            return connection.execute("SELECT status, amount_minor, currency FROM payments WHERE payment_id = ?",
                                      (payment_id,)).fetchone()
        except sqlite3.OperationalError:  # migrations not applied yet
            return None


def test_every_dashboard_metric_is_exported_by_a_running_pipeline(
        broker_factory: Callable[..., EmbeddedBroker], pipeline_factory: Callable[..., Pipeline]) -> None:
    broker = broker_factory()
    broker.start()
    asyncio.run(ensure_topics(broker.bootstrap, TopicCatalog(prefix="", partitions=2)))
    pipeline = pipeline_factory(broker.bootstrap, partitions=2)
    worker, ingress, sink = pipeline.worker(), pipeline.ingress(), pipeline.sink()
    ingress.wait_ready()
    sink.wait_ready()
    worker.wait_ready(timeout_s=120)

    if shutil.which("curl") and shutil.which("openssl"):
        payment = post_with_readme_snippet(ingress)
    else:  # pragma: no cover - both are on every machine this project runs on
        payment = post_with_python(ingress)
    forged = httpx.post(f"{ingress.url}/webhooks/stripe", content=b'{"id":"evt_forged","type":"x"}', timeout=10,
                        headers={"Content-Type": "application/json",
                                 "Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"})
    assert forged.status_code == 400

    db = Path(pipeline.base_env["PAYSTREAM_SINK_URL"].removeprefix("sqlite:///"))
    row = wait_until(lambda: payment_row(db, payment), 90, message=f"{payment} never reached the payments table:\n"
                     f"{worker.tail(20)}\n{sink.tail(20)}")
    assert row == ("succeeded", 4200, "EUR")

    exported = scrape(ingress) | scrape(worker) | scrape(sink)
    expressions = [*dashboard_expressions(json.loads(DASHBOARD.read_text("utf-8"))),
                   *alert_expressions(DEPLOY / "prometheus" / "alerts.yml")]
    queried = {name for expr in expressions for name in promql_metric_names(expr)}
    assert len(queried) >= 20
    missing = queried - exported - PROMETHEUS_SYNTHETIC
    assert not missing, f"the dashboard/alerts query metrics no process exports: {sorted(missing)}"

    # and the core series carry data, not just a declaration
    samples = [s for p in (ingress, worker, sink) for f in text_string_to_metric_families(p.metrics_text())
               for s in f.samples]

    def total(name: str, **labels: str) -> float:
        return sum(s.value for s in samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    assert total("paystream_ingress_requests_total", provider="stripe", outcome="accepted") >= 1
    assert total("paystream_ingress_verification_failures_total", provider="stripe") >= 1
    assert total("paystream_worker_ingress_to_state_seconds_count") >= 1
    assert total("paystream_sink_end_to_end_seconds_count") >= 1  # webhook received -> row committed
    assert total("paystream_sink_end_to_end_seconds_bucket", le="60.0") >= 1
    assert total("paystream_sink_rows_written_total", table="payments") >= 1
