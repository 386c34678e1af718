"""What every verifier returns, and small helpers they share."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from ingress.exceptions import VerificationError

__all__ = ["Headers", "VerificationError", "Verified", "check_timestamp", "constant_time_in"]

Headers = Mapping[str, str]
"""Request headers with lower-case names (Starlette's `Headers` is case-insensitive too)."""


@dataclass(frozen=True, slots=True)
class Verified:
    """Proof that a request is authentic, without any secret in it.

    `verified_by` is "<scheme>:<key id>", e.g. "stripe-v1:secret#2" — the key id
    is the secret's position in the configured list, so rotations are visible.
    """

    scheme: str
    key_id: str
    timestamp: int | None = None

    @property
    def verified_by(self) -> str:
        return f"{self.scheme}:{self.key_id}"


def constant_time_in(expected: bytes, candidates: list[str]) -> bool:
    """True if any candidate equals `expected`, each compared in constant time.

    Every candidate is compared (no early exit) so timing does not reveal which
    one matched; non-ASCII candidates can never match and are skipped.
    """
    matched = False
    for candidate in candidates:
        try:
            raw = candidate.encode("ascii")
        except UnicodeEncodeError:
            continue
        if hmac.compare_digest(expected, raw):
            matched = True
    return matched


def check_timestamp(timestamp: int, now: float, *, max_age_s: int, max_ahead_s: int) -> None:
    """Reject timestamps older than `max_age_s` or further than `max_ahead_s` in the future."""
    if max_age_s and timestamp < now - max_age_s:
        raise VerificationError("timestamp_too_old", f"timestamp is older than the {max_age_s}s tolerance")
    if timestamp > now + max_ahead_s:
        raise VerificationError("timestamp_too_new", f"timestamp is more than {max_ahead_s}s in the future")
