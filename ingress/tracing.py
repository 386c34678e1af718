"""W3C trace context: accept the caller's `traceparent`, or start a trace.

The ingress is a span of its own, so the value it forwards keeps the caller's
trace id with a fresh span id; the worker and the sink continue the same trace
from the Kafka header.
"""

from __future__ import annotations

import re
import secrets

__all__ = ["child_traceparent", "forward_traceparent", "new_traceparent", "parse_traceparent"]

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def parse_traceparent(value: str | None) -> tuple[str, str, str] | None:
    """(trace_id, parent_span_id, flags) of a valid header, else None."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, flags


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def forward_traceparent(incoming: str | None, random_hex: str) -> str:
    """The traceparent to forward, from 32 random hex chars: the caller's trace with our span, or a new trace."""
    span_id = random_hex[:16]
    parsed = parse_traceparent(incoming)
    if parsed is None:
        return f"00-{random_hex}-{span_id}-01" if random_hex != "0" * 32 else new_traceparent()
    trace_id, _, flags = parsed
    return f"00-{trace_id}-{span_id}-{flags}"


def child_traceparent(incoming: str | None) -> str:
    """The traceparent to forward: the caller's trace with our own span, or a new trace."""
    return forward_traceparent(incoming, secrets.token_hex(16))
