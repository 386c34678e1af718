"""Errors raised by `schemas/`.

    PaystreamError (paystream root, defined here because schemas/ depends on nothing)
    └── SchemaError
        ├── DecodeError      bytes that are not a record we know
        └── RegistryError    the schema registry refused or could not be reached
"""

from __future__ import annotations

__all__ = ["DecodeError", "PaystreamError", "RegistryError", "SchemaError"]


class PaystreamError(Exception):
    """Root of every error paystream raises on purpose."""


class SchemaError(PaystreamError):
    """A record could not be encoded or decoded."""


class DecodeError(SchemaError):
    """Bytes that are not a valid encoding of the expected record."""


class RegistryError(SchemaError):
    """The schema registry refused a schema or could not be reached."""
