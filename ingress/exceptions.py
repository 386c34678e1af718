"""Errors raised by the ingress.

    PaystreamError
    └── IngressError
        ├── VerificationError   the request is not authentic (400, reason code)
        ├── BadRequestError     authentic or not, it cannot be accepted (4xx, reason code)
        └── PublishError        the broker did not acknowledge in time (503)
            └── RecordRejectedError  the broker (or the producer) refused this one record; others are unaffected
"""

from __future__ import annotations

from schemas.exceptions import PaystreamError

__all__ = ["BadRequestError", "IngressError", "PublishError", "RecordRejectedError", "VerificationError"]


class IngressError(PaystreamError):
    """Base of the ingress's own errors."""


class VerificationError(IngressError):
    """A signature check failed. `reason` is a stable, machine-readable code.

    The message is safe to return to the caller: it never contains a secret,
    an expected signature or the request body.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class BadRequestError(IngressError):
    def __init__(self, status_code: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error = error
        self.message = message


class PublishError(IngressError):
    """The envelope could not be stored on the broker within the bound."""


class RecordRejectedError(PublishError):
    """A record-level refusal (too large, invalid): answered for this request only, the producer is kept."""

    def __init__(self, message: str, *, too_large: bool) -> None:
        super().__init__(message)
        self.too_large = too_large
