"""Avro serde for every topic (fastavro).

Two wire formats:

* **Avro single-object encoding** (the default): ``C3 01`` + the schema's
  CRC-64-AVRO fingerprint (8 bytes, little-endian, as the spec says) + the Avro
  binary body. Self-describing without any service, so the embedded broker needs
  nothing else. Releases before issue 14 wrote the fingerprint byte-reversed;
  readers accept that order too, so records already on a topic still decode.
* **Confluent wire format** when a schema registry is configured: ``00`` + the
  registry's schema id (4 bytes, big-endian) + the Avro binary body.

Readers accept both, so switching a deployment to a registry does not strand
records already on a topic.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas.codec import compile_decoder, compile_encoder
from schemas.exceptions import DecodeError, SchemaError
from schemas.records import (
    LedgerEntry,
    PaymentEvent,
    PaymentState,
    ReconciliationWindow,
    Record,
    WebhookEnvelope,
)

if TYPE_CHECKING:
    from fastavro.types import Schema

__all__ = [
    "AvroSerde",
    "SchemaRegistry",
    "envelope_serde",
    "ledger_serde",
    "load_schema",
    "payment_event_serde",
    "payment_state_serde",
    "reconciliation_serde",
]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"

R = TypeVar("R", bound=Record)


class SchemaRegistry(Protocol):
    """What the serde needs from a Confluent-compatible schema registry."""

    def register(self, subject: str, schema: dict[str, Any]) -> int: ...

    def schema_by_id(self, schema_id: int) -> dict[str, Any]: ...


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The raw JSON of `schemas/avro/<name>.avsc`."""
    text = resources.files("schemas").joinpath("avro", f"{name}.avsc").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def previous_schemas(name: str) -> list[dict[str, Any]]:
    """Earlier versions of `<name>` (`schemas/avro/previous/<name>.<n>.avsc`), oldest first: records written
    with them, still on topics and in tables, are read through Avro schema resolution."""
    folder = resources.files("schemas").joinpath("avro", "previous")
    prefix, suffix = f"{name}.", ".avsc"
    numbers = [f.name[len(prefix):-len(suffix)] for f in folder.iterdir()
               if f.name.startswith(prefix) and f.name.endswith(suffix)]
    return [json.loads(folder.joinpath(f"{prefix}{n}{suffix}").read_text("utf-8"))
            for n in sorted((n for n in numbers if n.isdigit()), key=int)]


def _fingerprint(parsed: Schema) -> bytes:
    """The spec's little-endian CRC-64-AVRO bytes (fastavro's hex is already in that order)."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


@dataclass(frozen=True)
class _Compiled:
    """What a serde needs from its schema files: parsed, fingerprinted and compiled once per record type."""

    raw_schema: dict[str, Any]
    schema: Schema
    fingerprint: bytes
    previous: dict[bytes, Schema]
    encode: Any
    decode: Any


@cache
def _compiled(avro_name: str) -> _Compiled:
    """Parsing, fingerprinting (CRC-64 in pure Python) and compiling cost milliseconds: done once per record
    type, so code that builds a serde per call (tools, tests) does not pay them per record."""
    raw_schema = load_schema(avro_name)
    schema = fastavro.parse_schema(raw_schema)
    previous: dict[bytes, Schema] = {}
    for raw in previous_schemas(avro_name):
        parsed = fastavro.parse_schema(raw)
        found = _fingerprint(parsed)
        previous[found] = previous[found[::-1]] = parsed  # either header byte order (pre-issue-14 was reversed)
    return _Compiled(raw_schema, schema, _fingerprint(schema), previous, compile_encoder(schema),
                     compile_decoder(schema))


class AvroSerde(Generic[R]):
    """Encodes and decodes one record type; one instance per topic is enough."""

    def __init__(
        self,
        record_type: type[R],
        *,
        registry: SchemaRegistry | None = None,
        subject: str | None = None,
    ) -> None:
        compiled = _compiled(record_type.AVRO_NAME)
        self.record_type = record_type
        self.raw_schema = compiled.raw_schema
        self.schema = compiled.schema
        self.fingerprint = compiled.fingerprint
        self._legacy_fingerprint = self.fingerprint[::-1]  # the pre-issue-14 (reversed) header
        self._registry = registry
        self._subject = subject
        self._schema_id: int | None = None
        self._writers_by_id: dict[int, Schema] = {}
        self._previous = compiled.previous
        self._header = SINGLE_OBJECT_MAGIC + self.fingerprint
        self._encode = compiled.encode
        self._decode = compiled.decode

    def _ensure_registered(self) -> bytes:
        if self._schema_id is None:
            assert self._registry is not None
            subject = self._subject or f"{self.raw_schema['name']}-value"
            self._schema_id = self._registry.register(subject, self.raw_schema)
            self._writers_by_id[self._schema_id] = self.schema
            self._header = CONFLUENT_MAGIC + struct.pack(">I", self._schema_id)
        return self._header

    def register(self) -> int:
        """Register the schema now (at startup, before serving), so no encode ever waits on the registry."""
        self._ensure_registered()
        assert self._schema_id is not None
        return self._schema_id

    def use_schema_id(self, schema_id: int) -> None:
        """Write Confluent framing with an id registered elsewhere (asynchronously, before serving)."""
        self._schema_id = schema_id
        self._writers_by_id[schema_id] = self.schema
        self._header = CONFLUENT_MAGIC + struct.pack(">I", schema_id)

    def encode(self, record: R) -> bytes:
        header = self._ensure_registered() if self._registry is not None else self._header
        out = bytearray(header)
        try:
            self._encode(record, out)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SchemaError(f"cannot encode {type(record).__name__}: {exc}") from exc
        return bytes(out)

    def _writer_for(self, data: bytes) -> tuple[Schema | None, int]:
        """The writer schema (None: our own, use the compiled decoder) and where the body starts."""
        if data[:2] == SINGLE_OBJECT_MAGIC:
            if data[2:10] not in (self.fingerprint, self._legacy_fingerprint):
                previous = self._previous.get(data[2:10])
                if previous is not None:
                    return previous, 10
                raise DecodeError(
                    f"unknown writer schema fingerprint {data[2:10].hex()} for {self.record_type.__name__}"
                )
            return None, 10
        if data[:1] == CONFLUENT_MAGIC and len(data) >= 5:
            (schema_id,) = struct.unpack(">I", data[1:5])
            if schema_id == self._schema_id:
                return None, 5
            writer = self._writers_by_id.get(schema_id)
            if writer is None:
                if self._registry is None:
                    raise DecodeError(f"Confluent-framed record (schema id {schema_id}) but no registry configured")
                writer = fastavro.parse_schema(self._registry.schema_by_id(schema_id))
                self._writers_by_id[schema_id] = writer
            return writer, 5
        raise DecodeError(f"not an Avro {self.record_type.__name__}: unknown framing {data[:2].hex()}")

    def decode_dict(self, data: bytes) -> dict[str, Any]:
        writer, offset = self._writer_for(data)
        if writer is None:
            try:
                decoded, end = self._decode(data, offset)
            except (IndexError, ValueError, DecodeError) as exc:  # ValueError covers bad UTF-8
                raise DecodeError(f"corrupt {self.record_type.__name__}: {type(exc).__name__}: {exc}") from exc
            if end != len(data):
                raise DecodeError(f"corrupt {self.record_type.__name__}: {len(data) - end} trailing bytes")
            result: dict[str, Any] = decoded
            return result
        try:
            value = fastavro.schemaless_reader(io.BytesIO(data[offset:]), writer, self.schema)
        except Exception as exc:  # fastavro raises a zoo of types on corrupt input
            raise DecodeError(f"corrupt {self.record_type.__name__}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(value, dict):
            raise DecodeError(f"corrupt {self.record_type.__name__}: not a record")
        return value

    def decode(self, data: bytes) -> R:
        values = self.decode_dict(data)
        try:
            return self.record_type.from_avro(values)
        except TypeError as exc:
            raise DecodeError(f"corrupt {self.record_type.__name__}: {exc}") from exc


def envelope_serde(registry: SchemaRegistry | None = None) -> AvroSerde[WebhookEnvelope]:
    return AvroSerde(WebhookEnvelope, registry=registry)


def payment_event_serde(registry: SchemaRegistry | None = None) -> AvroSerde[PaymentEvent]:
    return AvroSerde(PaymentEvent, registry=registry)


def payment_state_serde(registry: SchemaRegistry | None = None) -> AvroSerde[PaymentState]:
    return AvroSerde(PaymentState, registry=registry)


def ledger_serde(registry: SchemaRegistry | None = None) -> AvroSerde[LedgerEntry]:
    return AvroSerde(LedgerEntry, registry=registry)


def reconciliation_serde(registry: SchemaRegistry | None = None) -> AvroSerde[ReconciliationWindow]:
    return AvroSerde(ReconciliationWindow, registry=registry)
