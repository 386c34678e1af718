"""The ops console: one HTML page (no build step) and the JSON it polls, served by the worker.

`/ops` is the page (static, no data in it); `/ops/api/overview` and
`POST /ops/api/dlq/replay` need the bearer token like every ops view. The page takes
the token from the URL fragment (`/ops#token=…`, never sent to the server) or asks for
it, and keeps it in the tab's session storage. The token travels only in the
Authorization header, so another site cannot make the browser replay a dead letter.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from importlib import resources
from typing import TYPE_CHECKING, Any

import httpx
from faust.web import Request, Response, View
from prometheus_client.parser import text_string_to_metric_families

from paystream.core.broker import consumer_fetch_options
from streams.ops.dead_letters import DeadLetterFeed, LetterId, now_iso, replay_one

if TYPE_CHECKING:
    from streams.worker import Worker

__all__ = ["RateSampler", "consumer_lag", "lag_rows", "register_ops"]

log = logging.getLogger("paystream.streams.ops")
SAMPLE_EVERY_S = 2.0
SINK_GROUP = "paystream-sink"
"""The sink's consumer group (`connectors.runner`), after the topic prefix."""


class RateSampler:
    """Events per second over the last minutes, from the worker's processed counters."""

    def __init__(self, worker: Worker, *, every_s: float = SAMPLE_EVERY_S, keep: int = 150) -> None:
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


def lag_rows(worker: Worker) -> list[dict[str, Any]]:
    """Per partition this worker is assigned: the group's position, the log end and the lag between.

    A partition whose end is not known yet (no fetch answered for it) is listed with lag None,
    so the table says which partitions the worker owns from its first second.
    """
    app = worker.app
    consumer = app.consumer
    read_offsets = getattr(consumer, "_read_offset", {})
    committed = getattr(consumer, "_committed_offset", {})
    rows = []
    for tp in sorted(consumer.assignment()):
        if tp.topic.endswith("-changelog") or "__assignor" in tp.topic:
            continue
        end = consumer.highwater(tp)
        read = read_offsets.get(tp)
        position = read + 1 if read is not None else committed.get(tp) or 0
        rows.append({"group": app.conf.id, "topic": tp.topic, "partition": tp.partition, "position": position,
                     "end": end, "lag": None if end is None else max(0, end - position)})
    return rows


async def _sink_lag(url: str, group: str) -> list[dict[str, Any]]:
    """The sink's lag by topic, from its metrics (it keeps offsets in its database, not in a Kafka group)."""
    try:
        async with httpx.AsyncClient(timeout=1.5) as client:
            response = await client.get(f"{url}/metrics")
        response.raise_for_status()
    except httpx.HTTPError:
        return []
    rows = []
    for family in text_string_to_metric_families(response.text):
        if family.name == "paystream_sink_consumer_lag":
            rows += [{"group": group, "topic": sample.labels.get("topic", ""), "partition": None, "position": None,
                      "end": None, "lag": int(sample.value)} for sample in family.samples]
    return sorted(rows, key=lambda row: row["topic"])


def register_ops(worker: Worker, protected: Any) -> RateSampler:
    app = worker.app
    settings = worker.settings
    sampler = RateSampler(worker)
    ingress_url = settings.ops_ingress_url or f"http://127.0.0.1:{settings.ingress_port}"
    sink_url = settings.ops_sink_url or f"http://127.0.0.1:{settings.sink_metrics_port}"
    page = resources.files("streams.ops").joinpath("console.html").read_text("utf-8")
    letters_feed = DeadLetterFeed()
    dlq_topic = settings.topics.dlq
    embedded = settings.uses_embedded_broker

    @app.timer(interval=sampler.every_s)  # type: ignore[untyped-decorator]
    async def sample_rates() -> None:
        sampler.sample()

    @app.task  # type: ignore[untyped-decorator]
    async def follow_dead_letters() -> None:
        while True:
            try:
                await letters_feed.follow(settings.kafka_bootstrap, dlq_topic, range(settings.partitions),
                                          embedded=embedded, **consumer_fetch_options(embedded=embedded))
            except asyncio.CancelledError:
                raise
            except Exception:  # the console must not take the worker down: try again
                log.warning("dead-letter feed restarting", exc_info=True)
                await asyncio.sleep(1.0)

    @app.page("/ops")
    class Console(View):
        async def get(self, request: Request) -> Response:
            return self.html(page, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    async def overview(view: View, request: Request) -> Response:
        pipeline = worker.pipeline
        ingress, sink, sink_lag = await asyncio.gather(_probe(f"{ingress_url}/ready"), _probe(f"{sink_url}/ready"),
                                                       _sink_lag(sink_url, settings.topic_prefix + SINK_GROUP))
        recovery = app.tables.recovery  # type: ignore[attr-defined]
        stats = pipeline.stats
        return view.json({
            "components": {
                "worker": {"url": str(app.conf.canonical_url), "up": True,
                           "ready": recovery.completed.is_set() and not app.rebalancing},
                "ingress": ingress, "sink": sink,
            },
            "lag": consumer_lag(worker),
            "lag_by_partition": lag_rows(worker) + sink_lag,
            "rates": sampler.series(),
            "dedup": {"new": stats.new, "duplicates": stats.duplicates, "replayed": stats.replayed,
                      "conflicts": stats.conflicts, "hit_rate": round(stats.hit_rate, 4)},
            "dlq": {"count": letters_feed.count, "recent": letters_feed.rows()},
            "processed": dict(pipeline.processed),
        })

    async def replay(view: View, request: Request) -> Response:
        """Replay one dead letter, named by its place on the DLQ topic: `{"id": "<partition>@<offset>"}`."""
        try:
            body = await request.json()
            letter = LetterId.parse(str(body["id"]))
        except (ValueError, KeyError, TypeError):
            return view.json({"error": "bad_request", "message": 'send {"id": "<partition>@<offset>"}'}, status=400)
        if not await replay_one(settings.kafka_bootstrap, dlq_topic, letter, embedded=embedded):
            return view.json({"error": "not_found", "message": f"no dead letter at {letter}"}, status=404)
        letters_feed.replayed[str(letter)] = now_iso()
        return view.json({"replayed": str(letter), "at": letters_feed.replayed[str(letter)]})

    app.page("/ops/api/overview")(type("OpsOverview", (View,), {"get": protected(worker, overview)}))
    app.page("/ops/api/dlq/replay")(type("OpsDlqReplay", (View,), {"post": protected(worker, replay)}))
    return sampler
