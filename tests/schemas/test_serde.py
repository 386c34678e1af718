"""Avro serde: round trips, both framings, and clean errors on bad bytes."""

from __future__ import annotations

import contextlib
import io
import json
import struct
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import DecodeError
from schemas.clock import from_epoch_ms, now_ms
from schemas.records import (
    AmountMismatch,
    LedgerEntry,
    PaymentEvent,
    PaymentState,
    ReconciliationWindow,
    WebhookEnvelope,
)
from schemas.serde import AvroSerde, envelope_serde, load_schema, reconciliation_serde


def envelope(**overrides: Any) -> WebhookEnvelope:
    values: dict[str, Any] = {
        "envelope_id": "e1", "provider": "stripe", "source": "stripe", "provider_event_id": "evt_1",
        "event_type": "charge.succeeded", "received_at": now_ms(), "verified_by": "stripe-v1:secret#1",
        "body": b'{"id":"evt_1"}', "content_type": "application/json", "headers": {"user-agent": "Stripe/1.0"},
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
    values.update(overrides)
    return WebhookEnvelope(**values)


def test_every_record_type_round_trips() -> None:
    now = now_ms()
    records = [
        envelope(),
        PaymentEvent(event_key="stripe:evt_1", payment_id="pi_1", provider="stripe", event_type="x", kind="payment",
                     occurred_at=now, envelope_id="e1", received_at=now, status="succeeded", amount_minor=2000,
                     currency="USD", related_ids={"charge": "ch_1"}),
        PaymentState(payment_id="pi_1", provider="stripe", status="succeeded", created_at=now, updated_at=now,
                     status_at=now, last_event_key="stripe:evt_1", version=3, amount_minor=2000,
                     refunds={"re_1": 500}, flags=["out_of_order_seen"]),
        LedgerEntry(payment_id="pi_1", provider="stripe", amount_minor=2000, currency="USD", expected_at=now),
        ReconciliationWindow(provider="stripe", currency="USD", window_start=now, window_end=now,
                             amount_mismatches=[AmountMismatch(payment_id="pi_1", ledger_minor=1, provider_minor=2)]),
    ]
    for record in records:
        serde = AvroSerde(type(record))
        assert serde.decode(serde.encode(record)) == record


def test_single_object_encoding_header() -> None:
    serde = envelope_serde()
    data = serde.encode(envelope())
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == serde.fingerprint
    assert len(set(AvroSerde(t).fingerprint for t in (WebhookEnvelope, PaymentEvent, PaymentState))) == 3


_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO written out from the Avro specification ("Schema Fingerprints"), not from our code."""
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_spec_crc64_matches_the_published_null_fingerprint() -> None:
    # the specification's worked example: "null" -> 7195948357588979594, little-endian 8a 8f 25 cc e7 24 dd 63
    assert _crc64_avro(b'"null"') == 7195948357588979594
    assert (7195948357588979594).to_bytes(8, "little") == bytes.fromhex("8a8f25cce724dd63")


@pytest.mark.parametrize("record_type", [WebhookEnvelope, PaymentEvent, PaymentState, LedgerEntry,
                                         ReconciliationWindow])
def test_single_object_header_is_the_spec_little_endian_fingerprint(record_type: type[Any]) -> None:
    from fastavro import parse_schema
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    canonical = to_parsing_canonical_form(parse_schema(load_schema(record_type.AVRO_NAME)))
    expected = _crc64_avro(canonical.encode("utf-8")).to_bytes(8, "little")
    assert expected == bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))  # fastavro's own API agrees
    assert AvroSerde(record_type).fingerprint == expected


def test_a_spec_reader_resolves_our_header() -> None:
    """Read the header as a Java/Go/Rust single-object decoder does: magic, then a little-endian long."""
    from fastavro import parse_schema, schemaless_reader
    from fastavro.schema import to_parsing_canonical_form

    data = envelope_serde().encode(envelope())
    schema = parse_schema(load_schema(WebhookEnvelope.AVRO_NAME))
    by_fingerprint = {_crc64_avro(to_parsing_canonical_form(schema).encode("utf-8")): schema}
    assert data[:2] == b"\xc3\x01"
    writer = by_fingerprint[int.from_bytes(data[2:10], "little")]
    decoded = schemaless_reader(io.BytesIO(data[10:]), writer, None)
    assert isinstance(decoded, dict) and decoded["provider_event_id"] == "evt_1"


def test_records_written_with_the_old_reversed_header_still_decode() -> None:
    serde = envelope_serde()
    data = serde.encode(envelope())
    legacy = data[:2] + data[2:10][::-1] + data[10:]
    assert legacy != data
    assert serde.decode(legacy) == serde.decode(data)


class FakeRegistry:
    def __init__(self) -> None:
        self.schemas: dict[int, dict[str, Any]] = {}
        self.subjects: list[str] = []

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        self.subjects.append(subject)
        schema_id = 40 + len(self.schemas)
        self.schemas[schema_id] = json.loads(json.dumps(schema))
        return schema_id

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        return self.schemas[schema_id]


def test_confluent_wire_format_with_a_registry() -> None:
    registry = FakeRegistry()
    writer = AvroSerde(WebhookEnvelope, registry=registry, subject="payments.webhooks.raw.v1-value")
    data = writer.encode(envelope())
    assert data[0] == 0 and struct.unpack(">I", data[1:5]) == (40,)
    assert registry.subjects == ["payments.webhooks.raw.v1-value"]
    reader = AvroSerde(WebhookEnvelope, registry=registry)
    assert reader.decode(data) == envelope(received_at=reader.decode(data).received_at)
    # a reader without a registry still reads single-object records
    assert reader.decode(envelope_serde().encode(envelope())).provider_event_id == "evt_1"
    with pytest.raises(DecodeError, match="no registry"):
        envelope_serde().decode(data)


@given(st.binary(max_size=200))
def test_garbage_is_a_decode_error(data: bytes) -> None:
    serde = envelope_serde()
    with contextlib.suppress(DecodeError):
        serde.decode(data)


def test_truncated_and_foreign_records_are_decode_errors() -> None:
    data = envelope_serde().encode(envelope())
    with pytest.raises(DecodeError):
        envelope_serde().decode(data[:15])
    with pytest.raises(DecodeError, match="fingerprint"):
        reconciliation_serde().decode(data)


def test_avsc_field_names_equal_record_fields() -> None:
    from dataclasses import fields

    for record in (WebhookEnvelope, PaymentEvent, PaymentState, LedgerEntry, ReconciliationWindow):
        avro = {f["name"] for f in load_schema(record.AVRO_NAME)["fields"]}
        assert avro == {f.name for f in fields(record)}, record


@given(st.integers(-(2**40), 2**42))
def test_millisecond_clock_round_trips(ms: int) -> None:
    from schemas.clock import to_epoch_ms

    assert to_epoch_ms(from_epoch_ms(ms)) == ms


@pytest.mark.parametrize("header_order", ["spec", "reversed"])
def test_records_of_the_previous_schema_version_still_decode(header_order: str) -> None:
    """A PaymentState/PaymentEvent written before money parts existed (schema v1, still on topics and in
    RocksDB) reads through Avro resolution: new fields take their defaults."""
    from fastavro import parse_schema, schemaless_writer
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    from schemas.serde import payment_event_serde, payment_state_serde, previous_schemas

    t = from_epoch_ms(1_790_000_000_000)
    old_state = {"payment_id": "pi_1", "provider": "stripe", "status": "refunded", "amount_minor": 2000,
                 "captured_minor": 2000, "refunded_minor": 2000, "disputed_minor": 0, "currency": "USD",
                 "created_at": t, "updated_at": t, "last_event_key": "stripe:evt_2", "version": 2, "flags": [],
                 "status_at": t, "refunds": {"re_1": 2000}, "ignored_events": [], "traceparent": None,
                 "history": [{"event_key": "stripe:evt_2", "event_type": "refund.created", "kind": "refund",
                              "status": "partially_refunded", "amount_minor": 2000, "occurred_at": t,
                              "moved_status": True}]}
    old_event = {"event_key": "stripe:evt_2", "payment_id": "pi_1", "provider": "stripe", "event_type": "x",
                 "kind": "refund", "status": None, "amount_minor": 5, "currency": "USD", "occurred_at": t,
                 "provider_status": None, "related_ids": {"refund": "re_1"}, "refunded_total_minor": None,
                 "envelope_id": "e", "received_at": t, "livemode": None, "traceparent": None}
    for name, serde, value in (("payment_state", payment_state_serde(), old_state),
                               ("payment_event", payment_event_serde(), old_event)):
        parsed = parse_schema(previous_schemas(name)[0])
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
        out = io.BytesIO()
        schemaless_writer(out, parsed, value)
        header = b"\xc3\x01" + (fp if header_order == "spec" else fp[::-1])
        assert header[2:] != serde.fingerprint
        decoded = serde.decode(header + out.getvalue())
        assert decoded.payment_id == "pi_1"
        if name == "payment_state":
            assert (decoded.refunded_minor, decoded.authorized_minor, decoded.dispute_status) == (2000, 0, None)
            assert decoded.history[0].parts == [] and decoded.history[0].related_ids == {}
        else:
            assert decoded.parts == [] and decoded.related_ids == {"refund": "re_1"}


def test_a_payment_state_written_before_fold_revisions_reads_as_revision_0() -> None:
    """Schema v2 (money parts, no `fold_revision`) is what every state on a topic or in RocksDB was written
    with before revisions: it reads as revision 0, below every current revision, so a rebuild folds it again."""
    from fastavro import parse_schema, schemaless_writer

    from schemas.serde import _fingerprint, payment_state_serde, previous_schemas
    from streams.fold import FOLD_REVISION
    from streams.state import apply_event

    now = now_ms()
    event = PaymentEvent(event_key="stripe:evt_1", payment_id="pi_1", provider="stripe", event_type="x",
                         kind="payment", occurred_at=now, envelope_id="e1", received_at=now, status="succeeded",
                         amount_minor=2000, currency="USD", related_ids={"charge": "ch_1"})
    state = apply_event(None, event)
    assert state is not None and state.fold_revision == FOLD_REVISION >= 1
    parsed = parse_schema(previous_schemas("payment_state")[1])
    assert "fold_revision" not in {f["name"] for f in parsed["fields"]}
    old = state.to_avro()
    del old["fold_revision"]
    out = io.BytesIO()
    schemaless_writer(out, parsed, old)
    decoded = payment_state_serde().decode(b"\xc3\x01" + _fingerprint(parsed) + out.getvalue())
    assert decoded.fold_revision == 0
    assert replace(decoded, fold_revision=FOLD_REVISION) == state


def test_a_serde_per_call_parses_and_fingerprints_its_schema_only_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tools and checks build a serde per record; the schema work (pure-Python CRC-64 included) must not
    be repeated for each, and every such serde still reads the others' records."""
    import schemas.serde as serde_module

    parsed: list[Any] = []
    real_parse = serde_module.fastavro.parse_schema
    monkeypatch.setattr(serde_module.fastavro, "parse_schema", lambda raw: parsed.append(raw) or real_parse(raw))
    serde_module._compiled.cache_clear()
    try:
        data = envelope_serde().encode(envelope())
        decoded = [envelope_serde().decode(data) for _ in range(50)]
    finally:
        serde_module._compiled.cache_clear()
    assert {d.provider_event_id for d in decoded} == {"evt_1"}
    previous = len(serde_module.previous_schemas(WebhookEnvelope.AVRO_NAME))
    assert len(parsed) == 1 + previous, "each serde parsed its schema again"
