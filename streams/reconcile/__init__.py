"""Windowed reconciliation against the merchant's ledger (issue 4).

Definitions (docs/architecture.md, "Reconciliation", says the same):

* **Windows** are tumbling, epoch-aligned, `PAYSTREAM_RECON_WINDOW_S` long, per
  (provider, currency); a window `[start, end)` closes when the watermark reaches
  `end + PAYSTREAM_RECON_GRACE_S`.
* **Which window a payment belongs to**: with a ledger entry, the window of its
  `expected_at` in the ledger's currency (the provider's facts join it there, whenever
  they happen); without one, the window of the provider's confirmation time (the
  earliest event with a confirmed status), or of its earliest event while unconfirmed.
  A provider currency different from the ledger's puts the ledger side (missing) and
  the provider side (unexpected) in their own currencies' windows.
* **Confirmed** means the payment's canonical status is succeeded, partially_refunded,
  refunded, disputed, dispute_won or dispute_lost; the confirmed amount is what the
  provider captured (`captured_minor`, else the payment amount). Refunds do not lower
  it: they are reported in `refunded_minor`. `disputed_minor` counts open and lost
  disputes, `net_minor = captured - refunded - disputed`.
* **Event time** is the provider's `occurred_at`. Each events partition has a clock,
  the latest `occurred_at` it has read; the watermark is the lowest clock over all
  partitions that are not idle. Ledger entries never move a clock.
* **Late**: a record that changes a window when its partition's clock (counting the
  record itself) has already reached that window's end + grace. The first record of
  a window (revision 0) never contains late changes; each later change emits the next
  revision with `is_correction` true and `late_events` = how many late records changed
  it. Refunds and disputes of a payment in a closed window are late changes of it.
* **Output**: `ReconciliationWindow` on payments.reconciliation.v1, keyed
  `<provider>:<currency>:<window_start_iso>` (`window_start.isoformat()`, UTC), always
  the whole window, so the latest revision replaces the earlier ones.

Modules: `facts` (the provider's side of a payment) and `model` (the payment join,
which window, on time or late), `windows` (window sums, watermark, internal
records) — all pure; `join` (stage 1) and `aggregate` (stage 2) over `store`;
`feed` and `views` (ops); `wiring` (Faust). docs/architecture.md says why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.reconcile.wiring import Reconciliation
    from streams.worker import Worker

__all__ = ["register_reconciliation"]


def register_reconciliation(worker: Worker) -> Reconciliation:
    """Register the reconciliation agents and tables on `worker.app`; returns the handle its views and tests use."""
    from streams.reconcile.wiring import register

    return register(worker)
