"""Records, Avro serde and the topic catalog: the contract every other package builds on.

Depends on no other paystream package.
"""

from schemas.exceptions import DecodeError, PaystreamError, RegistryError, SchemaError
from schemas.records import (
    AmountMismatch,
    LedgerEntry,
    PaymentEvent,
    PaymentState,
    ReconciliationWindow,
    WebhookEnvelope,
)
from schemas.serde import AvroSerde
from schemas.topics import TopicCatalog, TopicSpec, ensure_topics

__all__ = [
    "AmountMismatch",
    "AvroSerde",
    "DecodeError",
    "LedgerEntry",
    "PaymentEvent",
    "PaymentState",
    "PaystreamError",
    "ReconciliationWindow",
    "RegistryError",
    "SchemaError",
    "TopicCatalog",
    "TopicSpec",
    "WebhookEnvelope",
    "ensure_topics",
]
