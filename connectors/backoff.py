"""Capped exponential backoff with jitter, for retrying an unavailable database."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays `initial_s · factor^n`, capped at `max_s`, each drawn from [cap/2, cap] ("equal jitter").

    Jitter keeps several sinks from hammering a database that just came back in lockstep;
    the lower half keeps the delay from collapsing to nothing.
    """

    def __init__(self, initial_s: float = 0.2, max_s: float = 5.0, factor: float = 2.0) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.attempts = 0

    def next_delay(self) -> float:
        cap = min(self.max_s, self.initial_s * self.factor ** min(self.attempts, 32))
        self.attempts += 1
        return random.uniform(cap / 2, cap)  # noqa: S311 - jitter, not cryptography

    def reset(self) -> None:
        self.attempts = 0
