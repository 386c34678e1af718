"""Worker metrics (`paystream_worker_*`), next to Faust's own Prometheus sensor on one registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["WorkerMetrics"]


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.records = Counter("paystream_worker_records", "Records consumed by stage", ["stage"],
                               registry=registry)
        self.dedup = Counter("paystream_worker_dedup", "Dedup verdicts (new, replay, duplicate, conflict)",
                             ["verdict"], registry=registry)
        self.events = Counter("paystream_worker_events", "Payment events emitted by kind and status",
                              ["provider", "kind", "status"], registry=registry)
        self.dead_letters = Counter("paystream_worker_dead_letters", "Records sent to the DLQ by stage",
                                    ["stage"], registry=registry)
        self.transitions = Counter("paystream_worker_state_transitions",
                                   "Applied events: moved the status, or kept it (out of order); refolded: "
                                   "a replay or a sweep's request folded a state of older money rules again",
                                   ["outcome"], registry=registry)
        self.applied = Counter("paystream_worker_state_events", "Events applied to payment states (incl. replays)",
                               registry=registry)
        self.forwarded = Counter("paystream_worker_state_forwarded",
                                 "Events sent to the state-input topic: another worker owns the payment, "
                                 "or this worker's table was not restored yet", registry=registry)
        self.identity = Counter("paystream_worker_identity",
                                "Payment identity: events held for an unknown parent, resolved, aliases linked, "
                                "conflicting links, aliases released as their own payment past the hold horizon",
                                ["outcome"], registry=registry)
        self.dedup_keys = Gauge("paystream_worker_dedup_keys", "Estimated keys in the local dedup table",
                                registry=registry)
        self.dedup_expired = Counter("paystream_worker_dedup_expired", "Dedup entries removed by the TTL sweep",
                                     registry=registry)
        self.state_expired = Counter("paystream_worker_state_expired",
                                     "Payment-state and alias entries deleted by the retention sweep "
                                     "(PAYSTREAM_STATE_RETENTION_S)", ["what"], registry=registry)
        self.batch_seconds = Histogram("paystream_worker_batch_seconds", "Time to process one batch", ["stage"],
                                       buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                                       registry=registry)
        self.e2e_seconds = Histogram("paystream_worker_ingress_to_state_seconds",
                                     "Ingress receive time to payment state emitted",
                                     buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                     registry=registry)
