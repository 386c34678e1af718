"""`paystream state rebuild`: re-apply a payment's events from payments.events.v1, for the day a state went stale.

Every event on payments.events.v1 (of one payment, or of all) is sent again to the internal
payments.state-input.v1 topic, on its payment's partition. The worker that owns the payment
applies each event its state lacks and re-emits the state for those it already has (a state is
a pure fold of its events, applied once by event key), so the state and the `payments` row end
with every event the pipeline ever emitted for that payment. A state folded by older money rules
(`PaymentState.fold_revision` below `streams.fold.FOLD_REVISION`) is folded again by the current ones
on its first replayed event: same events, same version, a higher revision, which the sink's guard lets
replace the row. Run it after an upgrade that changed the money rules. Safe to run on a live pipeline.
"""

from __future__ import annotations

import asyncio

import click
from aiokafka import AIOKafkaProducer

from paystream.core.broker import producer_options
from paystream.core.settings import Settings
from paystream.core.topic_reader import read_to_end
from schemas.topics import partition_for


async def rebuild_states(settings: Settings, payment_key: str | None, *, dry_run: bool = False) -> tuple[int, int]:
    """(events re-sent, payments touched)."""
    catalog = settings.topics
    key = payment_key.encode() if payment_key else None
    partitions = [partition_for(key, settings.partitions)] if key else None
    producer = None
    if not dry_run:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap,
                                    **producer_options(embedded=settings.uses_embedded_broker))
        await producer.start()
    sent, payments, futures = 0, set(), []
    try:
        async for record in read_to_end(settings.kafka_bootstrap, catalog.events,
                                        embedded=settings.uses_embedded_broker, partitions=partitions):
            if record.key is None or (key is not None and record.key != key):
                continue
            sent += 1
            payments.add(record.key)
            if producer is not None:
                futures.append(await producer.send(catalog.state_input, record.value, key=record.key,
                                                   partition=record.partition, headers=list(record.headers or [])))
        await asyncio.gather(*futures)
    finally:
        if producer is not None:
            await producer.stop()
    return sent, len(payments)


@click.group()
def state() -> None:
    """Payment states (payments.state.v1 and the workers' state tables)."""


@state.command()
@click.option("--payment", "payment_key", default=None, metavar="PROVIDER:ID",
              help="only this payment, e.g. stripe:pi_123 or paypal:5O190127TN364715T (default: every payment)")
@click.option("--dry-run", is_flag=True, help="count what would be re-sent")
def rebuild(payment_key: str | None, dry_run: bool) -> None:
    """Re-apply payments' events from payments.events.v1; workers add what a state lacks and fold again
    states that older money rules folded."""
    if payment_key is not None and ":" not in payment_key:
        raise click.BadParameter("give the payment as <provider>:<id>, e.g. stripe:pi_123", param_hint="--payment")
    settings = Settings.from_env()
    if not settings.kafka_bootstrap:
        raise click.ClickException("PAYSTREAM_KAFKA_BOOTSTRAP is empty: point it at the broker")
    sent, payments = asyncio.run(rebuild_states(settings, payment_key, dry_run=dry_run))
    verb = "would re-send" if dry_run else "re-sent"
    click.echo(f"{verb} {sent} event(s) of {payments} payment(s) to {settings.topics.state_input}")
