"""Verified webhook envelope → one canonical `PaymentEvent`.

Pure functions, no I/O: the normalize agent calls `normalize` for every deduplicated
envelope and sends a `NormalizeError` (with its machine `reason`) to the dead-letter topic.
Any other exception escaping `normalize` is a bug here, not bad input.

    normalize(envelope)                      dispatch on envelope.provider
    ├── stripe.normalize_stripe              snapshot and thin events
    ├── paypal.normalize_paypal              v2 captures/refunds/orders/disputes, v1 sales
    └── standard.normalize_standard          kind "other" unless a StandardMappings rule applies
"""

from __future__ import annotations

from schemas.lifecycle import Provider
from schemas.records import PaymentEvent, WebhookEnvelope
from streams.normalize.base import NormalizeError, load_json_object
from streams.normalize.paypal import normalize_paypal
from streams.normalize.standard import ANY_SOURCE, StandardMappings, StandardRule, normalize_standard
from streams.normalize.stripe import normalize_stripe

__all__ = ["ANY_SOURCE", "NormalizeError", "StandardMappings", "StandardRule", "normalize"]


def normalize(envelope: WebhookEnvelope, mappings: StandardMappings | None = None) -> PaymentEvent:
    """Map one verified envelope onto the canonical lifecycle; `mappings` only affects "standard"."""
    provider = envelope.provider
    if provider == Provider.STRIPE:
        return normalize_stripe(envelope, load_json_object(envelope.body))
    if provider == Provider.PAYPAL:
        return normalize_paypal(envelope, load_json_object(envelope.body))
    if provider == Provider.STANDARD:
        return normalize_standard(envelope, load_json_object(envelope.body), mappings)
    raise NormalizeError("unknown_provider", repr(provider)[:40])
