"""Ops views refuse every way of presenting the token except the Authorization header, and a
realistic run leaves no secret, signature or card/customer data in any log line.

One `paystream ingress` and one `paystream worker` run as child processes with JSON logs on
the session broker. Real deliveries for all three providers — Stripe and Standard Webhooks
signed with their secrets, PayPal signed by the dev signer through its certificate chain —
carry a card number, a customer email and name; some are refused (bad signature, stale, bad
JSON), one is a verified poison event that the worker dead-letters, and the ops views are
probed with the token in every wrong place. Then both processes are stopped and every line
they wrote is scanned.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from ingress.signing import PayPalDevSigner, sign_standard, sign_stripe
from paystream.dev.scenarios import paypal_capture, stripe_payment_intent
from schemas.serde import payment_event_serde
from tests.fixtures.kafka import drain
from tests.fixtures.streams import OPS_TOKEN, WorkerProcess
from tests.security.processes import IngressProcess, ingress_env, new_ingress

CARD = "4242424242424242"
EMAIL = "jenny.rosen@example.com"
NAME = "Jenny Rosen"
PHONE = "+1 415 555 0100"
VIEWS = ["/payments/pi_logs_1", "/dedup/stats", "/dlq/recent"]


def with_customer(body: bytes, path: list[str]) -> bytes:
    """The delivery with customer data where providers put it (billing details / payer)."""
    doc = orjson.loads(body)
    target = doc
    for key in path:
        target = target[key]
    target["billing_details"] = {"email": EMAIL, "name": NAME, "phone": PHONE}
    target["payment_method_details"] = {"card": {"number": CARD, "last4": CARD[-4:], "exp_month": 12}}
    target["payer"] = {"email_address": EMAIL, "name": {"given_name": "Jenny", "surname": "Rosen"}}
    target["description"] = f"order for {NAME} <{EMAIL}> card {CARD}"
    return orjson.dumps(doc)


def refusals(worker: WorkerProcess, path: str) -> list[tuple[str, int]]:
    url = f"{worker.url}{path}"
    probes: dict[str, dict[str, Any]] = {
        "none": {},
        "wrong": {"headers": {"Authorization": "Bearer not-the-token-000000"}},
        "prefix": {"headers": {"Authorization": f"Bearer {OPS_TOKEN[:-1]}"}},
        "suffix": {"headers": {"Authorization": f"Bearer {OPS_TOKEN}x"}},
        "basic": {"headers": {"Authorization": "Basic " + base64.b64encode(f"ops:{OPS_TOKEN}".encode()).decode()}},
        "bare": {"headers": {"Authorization": OPS_TOKEN}},
        "other_header": {"headers": {"X-Api-Key": OPS_TOKEN, "X-Ops-Token": OPS_TOKEN}},
        "cookie": {"cookies": {"token": OPS_TOKEN}},
        "query": {"params": {"token": OPS_TOKEN}},
        "query_access_token": {"params": {"access_token": OPS_TOKEN}},
        "query_and_header": {"params": {"token": OPS_TOKEN}, "headers": {"Authorization": f"Bearer {OPS_TOKEN}"}},
        "unicode": {"headers": {"Authorization": "Bearer " + OPS_TOKEN.replace("t", "\u0442", 1)}},
    }
    out = []
    for name, kwargs in probes.items():
        try:
            response = httpx.get(url, timeout=10, **kwargs)
        except (httpx.LocalProtocolError, UnicodeEncodeError):  # the client refuses to send it at all
            continue
        assert OPS_TOKEN not in response.text
        out.append((name, response.status_code))
    return out


async def test_ops_views_and_logs_of_a_realistic_run(
        stream_env: dict[str, str], tmp_path: Path, topics: Any, consumer_factory: Any,
        worker_factory: Callable[..., WorkerProcess]) -> None:
    stripe_secret = "whsec_" + secrets.token_urlsafe(24)
    standard_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    signer = PayPalDevSigner.generate()
    env = ingress_env(stream_env, tmp_path / "ingress-data", stripe_secret=stripe_secret,
                      standard_secret=standard_secret, paypal_webhook_id="LOGSHOOK", signer=signer)
    ingress = new_ingress(env, tmp_path / "ingress.log")
    worker = worker_factory(PAYSTREAM_LOG_FORMAT="json")
    sent_signatures: list[str] = []
    try:
        ingress.start()
        accepted, refused = await deliver(ingress, signer, stripe_secret, standard_secret, sent_signatures)
        events = await drain(await consumer_factory(topics.events), expected=accepted - 1, idle_s=2, timeout_s=60)
        keys = {payment_event_serde().decode(r.value).event_key for r in events}
        assert len(keys) == accepted - 1  # all but the poison event became payment events

        for path in VIEWS:
            outcome = dict(refusals(worker, path))
            assert {outcome.pop(k) for k in ("none", "other_header", "cookie")} == {401}, (path, outcome)
            assert {outcome.pop(k) for k in ("query", "query_access_token", "query_and_header")} == {400}
            assert set(outcome.values()) == {403}, (path, outcome)
            assert len(outcome) >= 5
            assert worker.get(path).status_code in (200, 404)  # the header works (404: unknown payment)
            lowercase = httpx.get(f"{worker.url}{path}", headers={"authorization": f"bearer {OPS_TOKEN}"})
            assert lowercase.status_code in (200, 404)
        metrics = httpx.get(f"{worker.url}/metrics", timeout=10).text + httpx.get(f"{ingress.url}/metrics").text
        assert OPS_TOKEN not in metrics and stripe_secret not in metrics
    finally:
        ingress.stop()
        worker.stop()

    lines = scan_logs([tmp_path / "ingress.log", worker.log_path], forbidden={
        "stripe secret": stripe_secret, "standard secret": standard_secret,
        "standard key": standard_secret.removeprefix("whsec_")[:24], "ops token": OPS_TOKEN,
        "card number": CARD, "card number (spaced)": " ".join(CARD[i:i + 4] for i in range(0, 16, 4)),
        "email": EMAIL, "customer name": NAME, "phone": PHONE, "private key": "PRIVATE KEY",
        **{f"signature #{i}": sig for i, sig in enumerate(sent_signatures)},
        **{f"signature #{i} prefix": sig[:16] for i, sig in enumerate(sent_signatures)},
    })
    # the scan is not vacuous: the logs describe the run
    records = [json.loads(line) for line in lines if line.startswith("{")]
    messages = [r.get("msg") for r in records]
    assert messages.count("webhook accepted") == accepted
    assert messages.count("webhook rejected") == refused
    assert "record dead-lettered" in messages
    assert {r.get("process") for r in records} >= {"ingress", "worker"}
    tuned = [r for r in records if r.get("msg") == "garbage collector tuned"]  # paystream/core/collector.py
    assert sorted(r["process"] for r in tuned) == ["ingress", "worker"]
    assert all(r["thresholds"][0] == 100_000 and r["frozen_objects"] > 0 for r in tuned)


async def deliver(ingress: IngressProcess, signer: PayPalDevSigner, stripe_secret: str, standard_secret: str,
                  sent_signatures: list[str]) -> tuple[int, int]:
    """Signed deliveries for the three providers plus refusals; returns (accepted, refused)."""
    now = int(time.time())
    accepted = refused = 0
    async with httpx.AsyncClient(base_url=ingress.url, timeout=10) as client:
        async def post(path: str, body: bytes, headers: dict[str, str], expect: int) -> None:
            nonlocal accepted, refused
            response = await client.post(path, content=body, headers={"content-type": "application/json", **headers})
            assert response.status_code == expect, response.text
            accepted += expect == 200
            refused += expect != 200

        for i, kind in enumerate(["payment_intent.created", "payment_intent.succeeded"]):
            body = with_customer(stripe_payment_intent(kind, "pi_logs_1", amount=1999, currency="USD", created=now + i,
                                                       charge="ch_logs_1").body, ["data", "object"])
            signature = sign_stripe(body, stripe_secret, now)
            sent_signatures.append(signature.split("v1=")[1])
            await post("/webhooks/stripe", body, {"stripe-signature": signature}, 200)
        # refused: wrong secret, stale, tampered body — each still carries customer data
        wrong = sign_stripe(body, "whsec_wrong", now)
        sent_signatures.append(wrong.split("v1=")[1])
        await post("/webhooks/stripe", body, {"stripe-signature": wrong}, 400)
        await post("/webhooks/stripe", body, {"stripe-signature": sign_stripe(body, stripe_secret, now - 3600)}, 400)
        await post("/webhooks/stripe", body + b" ", {"stripe-signature": signature}, 400)
        # verified but not an event: refused after verification
        garbage = f'{{"card": "{CARD}", "email": "{EMAIL}"'.encode()
        await post("/webhooks/stripe", garbage, {"stripe-signature": sign_stripe(garbage, stripe_secret, now)}, 400)
        # verified poison: an unknown currency, dead-lettered by the worker
        poison = with_customer(stripe_payment_intent("payment_intent.succeeded", "pi_poison", amount=5,
                                                     currency="USD", created=now).body, ["data", "object"])
        poison = poison.replace(b'"currency":"usd"', b'"currency":"zzz"')
        await post("/webhooks/stripe", poison, {"stripe-signature": sign_stripe(poison, stripe_secret, now)}, 200)

        capture = paypal_capture("PAYMENT.CAPTURE.COMPLETED", "CAPLOGS1", order="ORDLOGS1", amount=2500,
                                 currency="EUR", when=datetime.now(UTC))
        body = with_customer(capture.body, ["resource"])
        headers = {k.lower(): v for k, v in signer.headers(body, "LOGSHOOK").items()}
        sent_signatures.append(headers["paypal-transmission-sig"])
        await post("/webhooks/paypal", body, headers, 200)
        await post("/webhooks/paypal", body, headers | {"paypal-transmission-id": "other"}, 400)
        await post("/webhooks/paypal", body, headers | {"paypal-cert-url": "https://evil.example/c.pem"}, 400)

        body = with_customer(b'{"type":"invoice.paid","timestamp":"2026-01-01T00:00:00Z","data":{"id":"inv_logs"}}',
                             ["data"])
        signature = sign_standard(body, standard_secret, "msg_logs_1", now)
        sent_signatures.append(signature.split(",", 1)[1])
        await post("/webhooks/standard/acme", body, {"webhook-id": "msg_logs_1", "webhook-timestamp": str(now),
                                                     "webhook-signature": signature}, 200)
        await post("/webhooks/standard/acme", body, {"webhook-id": "msg_logs_2", "webhook-timestamp": str(now),
                                                     "webhook-signature": signature}, 400)
    return accepted, refused


def scan_logs(paths: list[Path], forbidden: dict[str, str]) -> list[str]:
    lines: list[str] = []
    for path in paths:
        lines += path.read_text("utf-8", "replace").splitlines()
    assert len(lines) > 10
    leaks = [(what, line[:300]) for line in lines for what, value in forbidden.items() if value and value in line]
    assert not leaks, leaks
    return lines
