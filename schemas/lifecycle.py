"""The canonical payment lifecycle every provider event is mapped onto.

`STATUS_RANK` orders statuses for the state machine's tie-break: when two
events carry the same provider time, the higher rank wins, so a duplicate or
late "processing" can never undo "succeeded".
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["KIND_VALUES", "STATUS_RANK", "Kind", "Provider", "Status"]


class Provider(StrEnum):
    STRIPE = "stripe"
    PAYPAL = "paypal"
    STANDARD = "standard"


class Kind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"
    DISPUTE = "dispute"
    AUTHORIZATION = "authorization"
    OTHER = "other"


class Status(StrEnum):
    CREATED = "created"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"
    DISPUTE_WON = "dispute_won"
    DISPUTE_LOST = "dispute_lost"


STATUS_RANK: dict[Status, int] = {
    Status.CREATED: 0,
    Status.REQUIRES_ACTION: 1,
    Status.PROCESSING: 2,
    Status.AUTHORIZED: 3,
    Status.FAILED: 4,
    Status.CANCELED: 5,
    Status.SUCCEEDED: 6,
    Status.PARTIALLY_REFUNDED: 7,
    Status.REFUNDED: 8,
    Status.DISPUTED: 9,
    Status.DISPUTE_WON: 10,
    Status.DISPUTE_LOST: 11,
}

KIND_VALUES = frozenset(k.value for k in Kind)
