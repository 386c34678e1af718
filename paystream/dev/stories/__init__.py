"""Money stories: one payment's refunds, disputes and authorizations in every shape a provider sends.

Each `Story` is the deliveries of one payment (in the order the provider sent them) and the
`payments` row they must produce. Stripe stories come in both API shapes: before 2022-11-15
(`charge.refunded` embeds `refunds.data[]`, the shape most accounts still send) and after it
(`refund.*` / `charge.refund.updated` events). Dispute and refund objects may name only their
charge (`payment_intent: null`), and PayPal refunds and disputes name only the capture, so some
stories deliver such an event before the payment's own. Bodies carry the fields the
normalizers read, shaped as in shared/reference/providers.md and shared/data/payloads.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from paystream.dev.stories.model import AMOUNT, CURRENCY, Expected, Story
from paystream.dev.stories.paypal import paypal_stories
from paystream.dev.stories.stripe import stripe_stories

__all__ = ["AMOUNT", "CURRENCY", "Expected", "Story", "all_stories"]


def all_stories(start: datetime, *, hours_apart: int = 1) -> list[Story]:
    """Every story, each in its own hour from `start`, so each lands in its own reconciliation window."""
    def at(index: int) -> datetime:
        return start + timedelta(hours=index * hours_apart, minutes=5)

    stripe = stripe_stories(at)
    return stripe + paypal_stories(at, len(stripe))
