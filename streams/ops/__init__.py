"""The ops console: one HTML page (no build step) and the JSON it polls, served by the worker.

`/ops` is the page (static, no data in it); `/ops/api/overview` needs the bearer token
like every ops view. The page takes the token from the URL fragment
(`/ops#token=…`, never sent to the server) or asks for it, and keeps it in the tab's
session storage.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from importlib import resources
from typing import TYPE_CHECKING, Any

import httpx
from faust.web import Request, Response, View

if TYPE_CHECKING:
    from streams.worker import Worker

__all__ = ["RateSampler", "register_ops"]


class RateSampler:
    """Events per second over the last minutes, from the worker's processed counters."""

    def __init__(self, worker: Worker, *, every_s: float = 5.0, keep: int = 120) -> None:
        self._worker = worker
        self.every_s = every_s
        self.samples: deque[tuple[float, int, int]] = deque(maxlen=keep)

    def sample(self) -> None:
        processed = self._worker.pipeline.processed
        self.samples.append((time.time(), processed["raw"], processed["events"]))

    def series(self) -> list[dict[str, float]]:
        points = list(self.samples)
        return [{"t": b[0], "raw_per_s": (b[1] - a[1]) / (b[0] - a[0]), "state_per_s": (b[2] - a[2]) / (b[0] - a[0])}
                for a, b in itertools.pairwise(points) if b[0] > a[0]]


async def _probe(url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=1.5) as client:
            response = await client.get(url)
        return {"url": url, "up": True, "ready": response.status_code == 200}
    except httpx.HTTPError as exc:
        return {"url": url, "up": False, "ready": False, "error": type(exc).__name__}


def consumer_lag(worker: Worker) -> dict[str, int]:
    """Messages not yet read, per topic, over the partitions this worker is assigned."""
    app = worker.app
    consumer = app.consumer
    lag: dict[str, int] = {}
    for tp in consumer.assignment():
        if tp.topic.endswith("-changelog") or "__assignor" in tp.topic:
            continue
        highwater = consumer.highwater(tp)
        read = getattr(consumer, "_read_offset", {}).get(tp)
        if highwater is None:
            continue
        position = (read + 1) if read is not None else 0
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - position)
    return lag


def register_ops(worker: Worker, protected: Any) -> RateSampler:
    app = worker.app
    settings = worker.settings
    sampler = RateSampler(worker)
    ingress_url = settings.ops_ingress_url or f"http://127.0.0.1:{settings.ingress_port}"
    sink_url = settings.ops_sink_url or f"http://127.0.0.1:{settings.sink_metrics_port}"
    page = resources.files("streams.ops").joinpath("console.html").read_text("utf-8")

    @app.timer(interval=sampler.every_s)  # type: ignore[untyped-decorator]
    async def sample_rates() -> None:
        sampler.sample()

    @app.page("/ops")
    class Console(View):
        async def get(self, request: Request) -> Response:
            return self.html(page, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    async def overview(view: View, request: Request) -> Response:
        pipeline = worker.pipeline
        ingress, sink = await asyncio.gather(_probe(f"{ingress_url}/ready"), _probe(f"{sink_url}/ready"))
        recovery = app.tables.recovery  # type: ignore[attr-defined]
        stats = pipeline.stats
        letters = pipeline.dead_letters
        return view.json({
            "components": {
                "worker": {"url": str(app.conf.canonical_url), "up": True,
                           "ready": recovery.completed.is_set() and not app.rebalancing},
                "ingress": ingress, "sink": sink,
            },
            "lag": consumer_lag(worker),
            "rates": sampler.series(),
            "dedup": {"new": stats.new, "duplicates": stats.duplicates, "replayed": stats.replayed,
                      "conflicts": stats.conflicts, "hit_rate": round(stats.hit_rate, 4)},
            "dlq": {"count": letters.count, "recent": [
                {"stage": d.stage, "key": d.key, "error": d.exception_class, "message": d.message,
                 "reason": d.reason, "failed_at": d.failed_at.isoformat(),
                 "original": f"{d.original_topic}[{d.original_partition}]@{d.original_offset}"}
                for d in list(letters.recent)[:10]]},
            "processed": dict(pipeline.processed),
        })

    view_class = type("OpsOverview", (View,), {"get": protected(worker, overview)})
    app.page("/ops/api/overview")(view_class)
    return sampler
