"""The worker's web views (Faust web, aiohttp): health, readiness, metrics and the ops JSON views.

Ops views need `Authorization: Bearer <PAYSTREAM_OPS_TOKEN>`: none → 401, wrong → 403.
A token in the query string is refused too (it would end up in access logs).
Payment lookups are answered by the worker that owns the payment's partition;
another worker forwards the request there. An alias (a charge, a capture) whose events are held
until an event names its payment answers 404 with those events listed.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from faust.web import Request, Response, View

from schemas.exceptions import DecodeError
from schemas.lifecycle import Provider
from schemas.topics import partition_for
from streams.identity import ALIAS_PREFIX, AliasEntry
from streams.monitor import serve_metrics

if TYPE_CHECKING:
    from streams.worker import Worker

__all__ = ["register_views"]

log = logging.getLogger("paystream.streams.views")
ROUTED_HEADER = "x-paystream-routed"


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def state_json(state: Any) -> dict[str, Any]:
    data: dict[str, Any] = state.to_avro()
    for name in ("created_at", "updated_at", "status_at"):
        data[name] = _iso(data[name])
    data["history"] = [{**h, "occurred_at": _iso(h["occurred_at"])} for h in data["history"]]
    return data


def _authorize(worker: Worker, request: Request) -> tuple[int, str] | None:
    """None when allowed, else (status, reason)."""
    token = worker.settings.ops_token
    query = getattr(request, "query", {}) or {}
    if "token" in query or "access_token" in query:
        return 400, "tokens are only accepted in the Authorization header"
    header = request.headers.get("Authorization", "")
    if not header:
        return 401, "missing bearer token"
    scheme, _, supplied = header.partition(" ")
    if token is None or scheme.lower() != "bearer" or not hmac.compare_digest(
            supplied.strip().encode(), token.get_secret_value().encode()):
        return 403, "invalid token"
    return None


Handler = Callable[..., Awaitable[Response]]


def protected(worker: Worker, handler: Handler) -> Handler:
    async def wrapper(view: View, request: Request, **match_info: Any) -> Response:
        refusal = _authorize(worker, request)
        if refusal is not None:
            status, reason = refusal
            return view.json({"error": "unauthorized" if status == 401 else "forbidden", "message": reason},
                             status=status)
        return await handler(view, request)

    return wrapper


def register_views(worker: Worker) -> None:
    app = worker.app
    pipeline = worker.pipeline
    serve_metrics(app, worker.registry)  # Faust's metrics, published per scrape (`streams/monitor.py`)
    state_table = worker.state_table
    partitions = worker.settings.partitions

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/ready")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            recovery = app.tables.recovery  # type: ignore[attr-defined]
            ready = app.consumer is not None and recovery.completed.is_set() and not app.rebalancing
            body = {"status": "ready" if ready else "not_ready", "rebalancing": bool(app.rebalancing),
                    "recovery_completed": recovery.completed.is_set()}
            return self.json(body, status=200 if ready else 503)

    async def payment(view: View, request: Request) -> Response:
        """A payment by its canonical id or by an alias (a Stripe charge, a PayPal capture or authorization)."""
        payment_id = request.match_info["payment_id"]
        provider = request.query.get("provider")
        providers = [provider] if provider else [p.value for p in Provider]
        waiting: dict[str, Any] | None = None
        for candidate in providers:
            found = await _lookup(view, request, candidate, payment_id)
            if found is not None and "payment" in found:
                return view.json(found)
            waiting = waiting or found
        if waiting is not None:  # an alias whose events wait for the event that names their payment
            held = waiting["held"]
            return view.json({"error": "not_found", "message": f"no payment {payment_id!r} yet: {len(held)} "
                              "event(s) about it are held until an event names the payment it belongs to",
                              **waiting}, status=404)
        return view.json({"error": "not_found", "message": f"no payment {payment_id!r}"}, status=404)

    async def _lookup(view: View, request: Request, provider: str, payment_id: str,
                      alias_of: str | None = None) -> dict[str, Any] | None:
        key = f"{provider}:{payment_id}".encode()
        partition = partition_for(key, partitions)
        owner = app.router.key_store(state_table.name, key)
        if str(owner).rstrip("/") != str(app.conf.canonical_url).rstrip("/"):
            if request.headers.get(ROUTED_HEADER) and alias_of is None:
                return None
            return await _forward(owner, request, provider, payment_id)
        raw = pipeline.states.get(partition, key)
        if raw is not None:
            body = {"payment": state_json(pipeline.state_serde.decode(raw)), "served_by": str(app.conf.canonical_url)}
            return body | ({"alias": alias_of} if alias_of else {})
        entry = AliasEntry.unpack(pipeline.states.get(partition, ALIAS_PREFIX + key))
        if alias_of is None and entry.payment is not None and entry.payment != payment_id:
            return await _lookup(view, request, provider, entry.payment, alias_of=payment_id)
        if alias_of is None and entry.payment is None and entry.held:
            return {"alias": payment_id, "provider": provider, "held": _held(entry),
                    "served_by": str(app.conf.canonical_url)}
        return None

    def _held(entry: AliasEntry) -> list[dict[str, Any]]:
        """What an operator needs to find each held event at the provider: its key, type and times."""
        out = []
        for event_key, (value, _) in sorted(entry.held.items()):
            try:
                event = pipeline.event_serde.decode(value)
            except DecodeError:  # an unreadable held event is still listed by its key
                out.append({"event_key": event_key})
                continue
            out.append({"event_key": event_key, "event_type": event.event_type, "kind": event.kind,
                        "occurred_at": _iso(event.occurred_at), "received_at": _iso(event.received_at)})
        return out

    async def dedup_stats(view: View, request: Request) -> Response:
        stats = pipeline.stats
        return view.json({
            "new": stats.new, "replayed": stats.replayed, "duplicates": stats.duplicates,
            "conflicts": stats.conflicts, "expired": stats.expired, "hit_rate": round(stats.hit_rate, 4),
            "estimated_keys": pipeline.dedup.estimated_keys(), "ttl_s": pipeline.dedup_ttl_s,
            "worker": str(app.conf.canonical_url),
        })

    async def dlq_recent(view: View, request: Request) -> Response:
        letters = pipeline.dead_letters
        return view.json({"count": letters.count, "recent": [
            {"original_topic": d.original_topic, "original_partition": d.original_partition,
             "original_offset": d.original_offset, "key": d.key, "stage": d.stage,
             "exception_class": d.exception_class, "message": d.message, "reason": d.reason,
             "failed_at": d.failed_at.isoformat()} for d in letters.recent]})

    for path, handler in (("/payments/{payment_id}", payment), ("/dedup/stats", dedup_stats),
                          ("/dlq/recent", dlq_recent)):
        view_class = type(f"Ops{handler.__name__.title()}", (View,), {"get": protected(worker, handler)})
        app.page(path)(view_class)


async def _forward(owner: Any, request: Request, provider: str, payment_id: str) -> dict[str, Any] | None:
    url = f"{str(owner).rstrip('/')}/payments/{payment_id}?provider={provider}"
    headers = {"Authorization": request.headers.get("Authorization", ""), ROUTED_HEADER: "1"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session, \
                session.get(url, headers=headers) as response:
            if response.status not in (200, 404):
                return None
            data: dict[str, Any] = await response.json()
            if response.status == 404:  # found only as an alias with held events, or not at all
                return {k: v for k, v in data.items() if k not in ("error", "message")} if "held" in data else None
            return data
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("payment lookup forward failed", extra={"owner": str(owner), "error": str(exc)})
        return None
