"""OpenTelemetry tracing: spans exported over OTLP/HTTP when `PAYSTREAM_OTLP_ENDPOINT` is set, silent otherwise.

Trace context travels as a W3C `traceparent` Kafka header from the ingress through
the worker to the sink (always, even without an exporter), so a trace started by a
provider request can be followed across the pipeline in any OTLP backend.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["Tracer", "setup_tracing"]

log = logging.getLogger("paystream.tracing")


class Tracer:
    """A thin wrapper: `enabled` is False and every call is free when no exporter is configured."""

    def __init__(self, tracer: Any = None, provider: Any = None) -> None:
        self._tracer = tracer
        self._provider = provider

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def start_span(self, name: str, traceparent: str | None = None, attributes: dict[str, Any] | None = None,
                   links: list[str] | None = None) -> Any:
        """A started span, child of `traceparent` when given; end it with `.end()`."""
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        propagator = TraceContextTextMapPropagator()
        context = propagator.extract({"traceparent": traceparent}) if traceparent else None
        span_links = []
        for link in links or ():
            linked = trace.get_current_span(propagator.extract({"traceparent": link})).get_span_context()
            if linked.is_valid:
                span_links.append(trace.Link(linked))
        return self._tracer.start_span(name, context=context, attributes=attributes or {}, links=span_links)

    @staticmethod
    def traceparent_of(span: Any) -> str:
        context = span.get_span_context()
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def setup_tracing(endpoint: str, service: str) -> Tracer:
    """Configure an OTLP/HTTP exporter for `service`; a disabled tracer when `endpoint` is empty."""
    if not endpoint:
        return Tracer()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("PAYSTREAM_OTLP_ENDPOINT is set but the OpenTelemetry SDK is not installed; tracing is off")
        return Tracer()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    log.info("tracing to OTLP endpoint", extra={"endpoint": endpoint, "service": service})
    return Tracer(provider.get_tracer("paystream"), provider)
