"""Errors raised by `connectors/`.

    PaystreamError (schemas.exceptions)
    └── SinkError
        ├── SinkBackpressureError   the target (or the DLQ) cannot take writes now; pause and retry
        ├── SchemaNotReadyError     the database is not migrated to the head revision
        ├── SinkConfigError         a sink URL or setting the connectors cannot use
        └── IdTooLongError          a record's id exceeds the stored bound: a row reject (dead letter)

Backpressure is an exception type, not a return code, so a caller cannot forget
to pause: the runner catches it, pauses every partition and retries the same batch.
"""

from __future__ import annotations

from schemas.exceptions import PaystreamError

__all__ = ["IdTooLongError", "SchemaNotReadyError", "SinkBackpressureError", "SinkConfigError", "SinkError"]


class SinkError(PaystreamError):
    """Root of the connector errors."""


class SinkBackpressureError(SinkError):
    """The database (or the dead-letter topic) is unavailable; nothing of the batch was committed."""

    def __init__(self, message: str, *, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SchemaNotReadyError(SinkError):
    """Tables are missing or older than the code; run `paystream sink migrate`."""


class SinkConfigError(SinkError):
    """A sink URL or setting the connectors cannot use."""


class IdTooLongError(SinkError, ValueError):
    """A payment id or event key longer than the sink stores; the record is dead-lettered, never retried."""
