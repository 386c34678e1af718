"""The compiled codec writes exactly what fastavro writes, and reads it back."""

from __future__ import annotations

import contextlib
import io
from datetime import datetime
from typing import Any

import fastavro
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import DecodeError
from schemas.clock import EPOCH, from_epoch_ms
from schemas.records import AmountMismatch, PaymentEvent, PaymentState, ReconciliationWindow, WebhookEnvelope
from schemas.serde import AvroSerde

longs = st.integers(-(2**63), 2**63 - 1)
millis = st.integers(-(2**40), 2**42).map(from_epoch_ms)
text = st.text(max_size=20)
maybe = st.none().__or__


def fastavro_bytes(serde: AvroSerde[Any], record: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, serde.schema, record.to_avro())
    return buf.getvalue()


envelopes = st.builds(
    WebhookEnvelope, envelope_id=text, provider=text, source=text, provider_event_id=text, event_type=text,
    received_at=millis, verified_by=text, body=st.binary(max_size=64), content_type=text,
    headers=st.dictionaries(text, text, max_size=3), provider_created_at=maybe(millis), livemode=maybe(st.booleans()),
    traceparent=maybe(text))
events = st.builds(
    PaymentEvent, event_key=text, payment_id=text, provider=text, event_type=text, kind=text, occurred_at=millis,
    envelope_id=text, received_at=millis, status=maybe(text), amount_minor=maybe(longs), currency=maybe(text),
    provider_status=maybe(text), related_ids=st.dictionaries(text, text, max_size=3),
    refunded_total_minor=maybe(longs), livemode=maybe(st.booleans()), traceparent=maybe(text))
states = st.builds(
    PaymentState, payment_id=text, provider=text, status=text, created_at=millis, updated_at=millis,
    status_at=millis, last_event_key=text, version=longs, amount_minor=maybe(longs), captured_minor=longs,
    refunded_minor=longs, disputed_minor=longs, currency=maybe(text), flags=st.lists(text, max_size=3),
    refunds=st.dictionaries(text, longs, max_size=3), ignored_events=st.lists(text, max_size=3),
    traceparent=maybe(text))
windows = st.builds(
    ReconciliationWindow, provider=text, currency=text, window_start=millis, window_end=millis,
    counts_by_status=st.dictionaries(text, longs, max_size=3), missing_at_provider=st.lists(text, max_size=3),
    amount_mismatches=st.lists(st.builds(AmountMismatch, payment_id=text, ledger_minor=longs,
                                         provider_minor=longs), max_size=3),
    late_events=longs, is_correction=st.booleans())


@settings(max_examples=300)
@given(st.one_of(envelopes, events, states, windows))
def test_same_bytes_as_fastavro_and_round_trip(record: Any) -> None:
    serde = AvroSerde(type(record))
    data = serde.encode(record)
    assert data[10:] == fastavro_bytes(serde, record)
    assert serde.decode(data) == record


@given(st.binary(max_size=120))
def test_corrupt_bodies_are_decode_errors(tail: bytes) -> None:
    serde = AvroSerde(PaymentState)
    with contextlib.suppress(DecodeError):
        serde.decode(serde._header + tail)


def test_timestamps_are_exact_milliseconds() -> None:
    moment = datetime(2026, 11, 27, 13, 0, 0, 123000, tzinfo=EPOCH.tzinfo)
    serde = AvroSerde(PaymentEvent)
    event = PaymentEvent(event_key="k", payment_id="p", provider="stripe", event_type="t", kind="payment",
                         occurred_at=moment, envelope_id="e", received_at=moment)
    assert serde.decode(serde.encode(event)).occurred_at == moment
