"""What a money story is: one payment's deliveries and the `payments` row they must produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from paystream.dev.scenarios import Delivery

__all__ = ["AMOUNT", "CURRENCY", "Expected", "Story"]

AMOUNT = 2000
CURRENCY = "USD"


@dataclass(frozen=True)
class Expected:
    """The `payments` row a story must end with."""

    status: str
    captured: int = AMOUNT
    amount: int = AMOUNT
    """`amount_minor`: what was asked for or held, not what was captured."""
    refunded: int = 0
    refund_pending: int = 0
    authorized: int = 0
    disputed: int = 0
    dispute_status: str | None = None
    dispute_count: int = 0

    def row(self) -> tuple[object, ...]:
        return (self.status, self.amount, self.captured, self.refunded, self.refund_pending, self.authorized,
                self.disputed, self.dispute_status, self.dispute_count)


@dataclass
class Story:
    name: str
    provider: str
    payment_id: str
    """The canonical payment: Stripe's PaymentIntent, PayPal's order."""
    deliveries: list[Delivery]
    expected: Expected
    at: datetime
    confirmed: bool = True
    """Whether the provider captured money (reconciliation counts it as confirmed)."""
    notes: list[str] = field(default_factory=list)

    @property
    def payment_key(self) -> str:
        return f"{self.provider}:{self.payment_id}"

    @property
    def booked_minor(self) -> int:
        """What the merchant's ledger expects: what the provider captured (a partial capture is the
        merchant's choice), or the whole amount when nothing was."""
        return self.expected.captured if self.confirmed else AMOUNT
