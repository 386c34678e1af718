"""Folding again, with no new event, the payment states an older release's money rules folded.

Every state carries the revision of the money rules that folded it (`streams.fold.FOLD_REVISION`). After an
upgrade that changed them, the state sweep finds the states of an older revision and asks for each to be
folded again through the key's own state-input partition, as held releases do (`held_release.py`): the
request is an input record with an offset, applied in a later batch under the applied mark, so a worker
that dies after its local write but before its sends arrive replays the request, and the replay sends the
state again (the local copy is current by then). Folding in the sweep itself would leave such a state
refolded locally and stale in the changelog, on the state topic and in `payments`, for good.

A replayed event of the payment (`paystream state rebuild`) folds it again the same way, in
`StateStage._apply_one`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.lifecycle import Kind
from schemas.records import PaymentEvent, PaymentState

__all__ = ["REFOLD_EVENT_TYPE", "refold_request"]

REFOLD_EVENT_TYPE = "paystream.refold"
"""Event type of a request to fold a payment's state again (state-input topic only)."""


def refold_request(state: PaymentState, now: datetime | None = None) -> PaymentEvent:
    """The internal record asking the owner of `state`'s payment to fold it again. Kind `other`: applied as
    an event, it would change nothing."""
    at = now or datetime.now(UTC)
    return PaymentEvent(
        event_key=f"refold:{state.payment_key}:{state.fold_revision}", payment_id=state.payment_id,
        provider=state.provider, event_type=REFOLD_EVENT_TYPE, kind=Kind.OTHER.value, occurred_at=state.updated_at,
        envelope_id="", received_at=at,
    )
