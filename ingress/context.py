"""Everything a request needs, built once per app from the settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ingress.metrics import IngressMetrics
from ingress.publisher import BrokerPublisher, Publisher
from ingress.rdkafka import ConfluentPublisher
from ingress.registration import SchemaRegistration
from ingress.verify import PayPalCertStore, PayPalVerifier, StandardVerifier, StripeVerifier
from ingress.verify.certs import default_roots
from paystream.core.broker import producer_options, publish_linger_ms
from paystream.core.settings import Settings
from paystream.core.tracing import Tracer, setup_tracing
from schemas.records import WebhookEnvelope
from schemas.registry import AsyncHttpSchemaRegistry
from schemas.serde import AvroSerde, envelope_serde
from schemas.topics import TopicCatalog

__all__ = ["Clock", "IngressContext", "build_context"]

Clock = Callable[[], float]


@dataclass
class IngressContext:
    settings: Settings
    topics: TopicCatalog
    publisher: BrokerPublisher
    serde: AvroSerde[WebhookEnvelope]
    metrics: IngressMetrics
    stripe: StripeVerifier
    paypal: PayPalVerifier
    paypal_certs: PayPalCertStore
    standard: dict[str, StandardVerifier]
    clock: Clock
    tracer: Tracer
    schemas: SchemaRegistration
    body_timeout_s: float = 10.0


def build_context(
    settings: Settings,
    *,
    publisher: BrokerPublisher | None = None,
    clock: Clock = time.time,
    paypal_certs: PayPalCertStore | None = None,
    metrics: IngressMetrics | None = None,
) -> IngressContext:
    """Wire verifiers, serde and publisher from settings; nothing connects here."""
    if publisher is None:
        if not settings.kafka_bootstrap:
            raise ValueError("the ingress needs PAYSTREAM_KAFKA_BOOTSTRAP (`paystream dev` runs an embedded broker)")
        client = ConfluentPublisher if settings.ingress_producer == "confluent" else Publisher
        publisher = client(
            settings.kafka_bootstrap,
            producer_options={**producer_options(
                embedded=settings.uses_embedded_broker,
                linger_ms=publish_linger_ms(embedded=settings.uses_embedded_broker,
                                            configured=settings.publish_linger_ms)),
                              # every body under the 413 limit fits, and nothing larger than the broker stores
                              "max_request_size": settings.publish_max_request_size},
            timeout_s=settings.publish_timeout_s,
        )
    # registered in the lifespan (async), never from the request path: see ingress/registration.py
    registry = AsyncHttpSchemaRegistry(settings.schema_registry_url) if settings.schema_registry_url else None
    serde: AvroSerde[WebhookEnvelope] = envelope_serde()
    schemas = SchemaRegistration(serde, registry, f"{settings.topics.raw}-value")
    if paypal_certs is None:
        paypal_certs = PayPalCertStore(
            settings.resolved_paypal_cert_cache_dir,
            settings.paypal_cert_hosts,
            roots=default_roots(settings.paypal_trust_roots_file),
            fetch_timeout_s=settings.paypal_cert_fetch_timeout_s,
        )
    return IngressContext(
        settings=settings,
        topics=settings.topics,
        publisher=publisher,
        serde=serde,
        metrics=metrics or IngressMetrics(),
        stripe=StripeVerifier(
            [s.get_secret_value() for s in settings.stripe_webhook_secrets],
            tolerance_s=settings.stripe_tolerance_s,
            future_tolerance_s=settings.stripe_future_tolerance_s,
        ),
        paypal=PayPalVerifier(
            settings.paypal_webhook_id,
            paypal_certs,
            tolerance_s=settings.paypal_tolerance_s,
            future_tolerance_s=settings.paypal_future_tolerance_s,
        ),
        paypal_certs=paypal_certs,
        standard={
            source: StandardVerifier(source, [s.get_secret_value() for s in secrets],
                                     tolerance_s=settings.standard_tolerance_s)
            for source, secrets in settings.standard_webhook_secrets.items()
        },
        clock=clock,
        tracer=setup_tracing(settings.otlp_endpoint, "paystream-ingress"),
        schemas=schemas,
    )
