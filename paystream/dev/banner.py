"""What `paystream dev` prints once everything is ready: where to look and what to paste."""

from __future__ import annotations

import shlex
import time
import uuid

from ingress.signing import sign_stripe

__all__ = ["banner", "stripe_example"]


def stripe_example_body(event_id: str, payment_id: str, created: str) -> str:
    return ('{"id":"%s","object":"event","type":"payment_intent.succeeded","created":%s,"livemode":false,'
            '"data":{"object":{"id":"%s","object":"payment_intent","amount":2000,"amount_received":2000,'
            '"currency":"usd","status":"succeeded","created":%s}}}' % (event_id, created, payment_id, created))


def stripe_example(ingress_url: str, secret: str) -> tuple[str, str]:
    """(a curl signed now, valid for 5 minutes; a curl that signs itself with openssl when pasted)."""
    suffix = uuid.uuid4().hex[:16]
    body = stripe_example_body(f"evt_dev_{suffix}", f"pi_dev_{suffix}", str(int(time.time())))
    header = sign_stripe(body.encode(), secret, int(time.time()))
    signed_now = (f"curl -sS -X POST {ingress_url}/webhooks/stripe -H 'Content-Type: application/json' "
                  f"-H {shlex.quote('Stripe-Signature: ' + header)} --data-binary {shlex.quote(body)}")
    template = stripe_example_body("evt_dev_$T$RANDOM", "pi_dev_$T$RANDOM", "$T")
    self_signing = (
        f"SECRET={shlex.quote(secret)}; T=$(date +%s); BODY=\"{template.replace(chr(34), chr(92) + chr(34))}\"; "
        "SIG=$(printf '%s' \"$T.$BODY\" | openssl dgst -sha256 -hmac \"$SECRET\" | sed 's/^.* //'); "
        f"curl -sS -X POST {ingress_url}/webhooks/stripe -H 'Content-Type: application/json' "
        "-H \"Stripe-Signature: t=$T,v1=$SIG\" --data-binary \"$BODY\""
    )
    return signed_now, self_signing


def banner(*, ingress_url: str, broker: str, sqlite_path: str | None, ops_url: str | None, ops_token: str,
           stripe_secret: str) -> str:
    signed_now, self_signing = stripe_example(ingress_url, stripe_secret)
    lines = [
        "",
        "paystream is running. Ctrl-C stops everything.",
        f"  ingress       {ingress_url}   (OpenAPI: {ingress_url}/docs, metrics: {ingress_url}/metrics)",
        f"  broker        {broker}   (embedded, memory only)",
    ]
    if ops_url:
        lines.append(f"  ops console   {ops_url}/ops#token={ops_token}")
    lines.append(f"  ops token     {ops_token}   (Authorization: Bearer …)")
    if sqlite_path:
        lines.append(f"  SQLite        {sqlite_path}   (sqlite3 {sqlite_path} 'select * from payments')")
    lines += [
        "",
        "Send a signed Stripe event (valid for 5 minutes):",
        f"  {signed_now}",
        "",
        "Or one that signs itself when pasted (needs openssl):",
        f"  {self_signing}",
        "",
        "More: `paystream send --provider all --scenario checkout`, examples/*.sh",
        "",
    ]
    return "\n".join(lines)
