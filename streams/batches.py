"""One `take_events` batch at a time, committed only when everything it caused was delivered.

Faust's `take_events` acknowledges a batch in a `finally`, so an exception that left an agent would
let Faust commit records whose outputs were never stored. `run_batch` marks a failed batch's messages
so that acknowledgement records nothing; the agents run under mode's `CrashingSupervisor`, which stops
the worker instead of restarting the agent past the uncommitted records. The worker restarts
(compose, Kubernetes, `paystream dev`) from the last commit, and the dedup table (and each
reconciliation stage's stored offsets) turn what it reads again into replays.

`batches` keeps the stream's own acknowledgements off for good: `take_events` restores the stream's
`enable_acks` when it ends, and from then on Faust's passive drainer would acknowledge, unprocessed, every
record it still fetches while the worker stops, and the stop's commit would skip them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

__all__ = ["batches", "run_batch", "withhold"]

log = logging.getLogger("paystream.streams")


def withhold(messages: Sequence[Any]) -> None:
    """Keep Faust from ever committing these messages in this process.

    Faust's consumer records an offset as committable only when a message's `acked` flag goes from
    false to true, so setting it here turns the acknowledgement in `take_events`' `finally` into a no-op:
    the consumer never advances past the first withheld offset of each partition."""
    for message in messages:
        message.acked = True


async def run_batch(events: Sequence[Any], handle: Callable[[list[Any]], Awaitable[None]]) -> None:
    """Process one `take_events` batch; if anything escapes `handle`, none of the batch is committed."""
    messages = [event.message for event in events]
    try:
        await handle(messages)
    except BaseException as exc:
        withhold(messages)
        if not isinstance(exc, asyncio.CancelledError):
            log.critical("batch not delivered; stopping the worker before Faust commits it (restart resumes from "
                         "the last commit)", extra={"records": len(messages), "error": repr(exc)[:500]})
        raise


async def batches(stream: Any, size: int, within: float) -> AsyncIterator[Sequence[Any]]:
    """`stream.take_events(size, within)` with acknowledgements only from `take_events` itself.

    With `enable_acks` false before `take_events` starts, it is false after it ends too, so a record is
    acknowledged only as part of a batch that was handled (`Stream(enable_acks=...)` is public Faust API)."""
    stream.enable_acks = False
    async for events in stream.take_events(size, within=within):
        yield events
