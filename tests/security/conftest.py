"""Fixtures of the security tests (the broker, ingress and worker fixtures are the shared ones of tests/fixtures)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.security.support import Harness, Seed, make_harness, seeds

__all__ = ["NOW"]

# One pinned "now" for the in-process ingress (the dev certificates are valid around it).
NOW = float(int(time.time()))


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Harness:
    """The real ingress app in-process: recording publisher, pinned clock, offline certificate store."""
    return make_harness(tmp_path_factory.mktemp("security") / "certs", now=NOW)


@pytest.fixture(scope="module")
def seed_list(harness: Harness) -> list[Seed]:
    return seeds(harness)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for the hypothesis examples of a module (each example runs a coroutine on it)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()
