"""Ops views: `GET /reconciliation/summary`, `/reconciliation/windows` and `/reconciliation/drilldown`.

All behind the ops token. The first two answer from the window feed (every emitted
window, highest revision per key), so any worker answers for all of them; the summary
adds this worker's own watermarks and open windows, which say why a window has not
closed yet. The drill-down (`?key=<window key>`) lists the window's missing, unexpected
and mismatched payments with both amounts and the ledger's merchant reference, from the
window table of the worker that owns the series; another worker routes the request there.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from faust.exceptions import SameNode
from faust.web import Request, Response, View

from schemas.clock import from_epoch_ms, to_epoch_ms
from schemas.lifecycle import Provider
from schemas.records import ReconciliationWindow
from streams.reconcile.windows import drilldown
from streams.views import protected

if TYPE_CHECKING:
    from streams.reconcile.wiring import Reconciliation
    from streams.worker import Worker

__all__ = ["drilldown_json", "register_disabled_reconciliation_views", "register_reconciliation_views",
           "series_json", "window_json"]

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_PROVIDERS = frozenset(p.value for p in Provider)


def window_json(window: ReconciliationWindow) -> dict[str, Any]:
    data = window.to_avro()
    data["key"] = window.key
    data["window_start"] = window.window_start.isoformat()
    data["window_end"] = window.window_end.isoformat()
    data["anomalies"] = _anomalies(window)
    return data


def series_json(window: ReconciliationWindow, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """One window as `/reconciliation/summary` lists it (the ops console reads these keys)."""
    return {
        "key": window.key, "provider": window.provider, "currency": window.currency,
        "window_start": window.window_start.isoformat(), "window_end": window.window_end.isoformat(),
        "revision": window.revision, "is_correction": window.is_correction,
        "ledger_expected_minor": window.ledger_expected_minor,
        "provider_confirmed_minor": window.provider_confirmed_minor,
        "captured_minor": window.captured_minor, "refunded_minor": window.refunded_minor,
        "disputed_minor": window.disputed_minor, "net_minor": window.net_minor,
        "failed_count": window.failed_count, "anomalies": counts or _anomalies(window),
    }


def drilldown_json(window: ReconciliationWindow, payments: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """One window as `/reconciliation/drilldown` answers it (the console's drill-down reads these keys)."""
    return {"key": window.key, "provider": window.provider, "currency": window.currency,
            "window_start": window.window_start.isoformat(), "window_end": window.window_end.isoformat(),
            "revision": window.revision, "late_events": window.late_events, "anomalies": _anomalies(window),
            "payments": payments}


def _anomalies(window: ReconciliationWindow) -> dict[str, int]:
    return {"missing_at_provider": len(window.missing_at_provider),
            "unexpected_at_provider": len(window.unexpected_at_provider),
            "amount_mismatches": len(window.amount_mismatches), "late_events": window.late_events}


def _bad_request(view: View, message: str) -> Response:
    return view.json({"error": "bad_request", "message": message}, status=400)


def register_reconciliation_views(worker: Worker, handle: Reconciliation) -> None:
    app = worker.app
    feed = handle.feed

    async def summary(view: View, request: Request) -> Response:
        latest = feed.latest_per_series()
        totals = {"missing_at_provider": 0, "unexpected_at_provider": 0, "amount_mismatches": 0, "late_events": 0}
        series = []
        for window in latest:
            counts = _anomalies(window)
            for name, count in counts.items():
                totals[name] += count
            series.append(series_json(window, counts))
        windows = list(feed.windows.values())
        local = handle.windows
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == handle.placements_topic}
        return view.json({
            "latest": series,
            "anomalies": totals,
            "windows_closed": len(windows),
            "windows_corrected": sum(1 for w in windows if w.revision > 0),
            "window_s": handle.spec.size_ms // 1000, "grace_s": handle.spec.grace_ms // 1000,
            "worker": {
                "url": str(app.conf.canonical_url),
                "open_windows": sum(n for p, n in local.open_windows.items() if p in owned),
                "join": dataclasses.asdict(handle.join.stats),
                "watermarks": {str(p): None if mark is None else from_epoch_ms(mark).isoformat()
                               for p, mark in sorted(local.watermarks.items()) if p in owned},
            },
        })

    async def windows(view: View, request: Request) -> Response:
        query = request.query
        provider = query.get("provider") or None
        currency = query.get("currency") or None
        since_text = query.get("since") or None
        if provider is not None and provider not in _PROVIDERS:
            return _bad_request(view, f"provider must be one of {sorted(_PROVIDERS)}")
        if currency is not None:
            currency = currency.upper()
            if not _CURRENCY.match(currency):
                return _bad_request(view, "currency must be an ISO 4217 code such as EUR")
        since = None
        if since_text is not None:
            try:  # an unencoded "+01:00" arrives as " 01:00"
                since = datetime.fromisoformat(since_text.replace(" ", "+"))
            except ValueError:
                return _bad_request(view, "since must be an ISO 8601 time with a zone")
            if since.tzinfo is None:
                return _bad_request(view, "since must be an ISO 8601 time with a zone")
        chosen = feed.select(provider=provider, currency=currency, since=since)
        return view.json({"count": len(chosen), "windows": [window_json(w) for w in chosen]})

    async def detail(view: View, request: Request) -> Response:
        key = request.query.get("key") or ""
        window = feed.windows.get(key.replace(" ", "+"))
        if window is None:
            return view.json({"error": "not_found", "message": f"no closed window {key!r}"}, status=404)
        series = f"{window.provider}:{window.currency}"
        try:  # the window table's partition of this series may live on another worker
            routed: Response = await app.router.route_req(handle.window_table.name, series.encode(), view.web,
                                                          request)
            return routed
        except SameNode:
            pass
        placements = handle.windows.stored_placements(series, to_epoch_ms(window.window_start))
        payments = drilldown((pid, p.current) for pid, p in placements if p.current is not None)
        return view.json(drilldown_json(window, payments) | {"served_by": str(app.conf.canonical_url)})

    for path, handler in (("/reconciliation/summary", summary), ("/reconciliation/windows", windows),
                          ("/reconciliation/drilldown", detail)):
        view_class = type(f"Ops{handler.__name__.title()}Reconciliation", (View,),
                          {"get": protected(worker, handler)})
        app.page(path)(view_class)


def register_disabled_reconciliation_views(worker: Worker) -> None:
    """With PAYSTREAM_RECONCILIATION=false the views still answer, with why there is nothing to see."""

    async def disabled(view: View, request: Request) -> Response:
        return view.json({"error": "reconciliation_disabled",
                          "message": "reconciliation is off on this worker (PAYSTREAM_RECONCILIATION=false)"},
                         status=404)

    for path, name in (("/reconciliation/summary", "Summary"), ("/reconciliation/windows", "Windows"),
                       ("/reconciliation/drilldown", "Drilldown")):
        view_class = type(f"Ops{name}ReconciliationDisabled", (View,), {"get": protected(worker, disabled)})
        worker.app.page(path)(view_class)
