"""The running worker as its parts see it: the Faust app and what views, tests and benchmarks reach for.

Its own module so that the parts registered on a worker (views, reconciliation, the console)
can name the type without importing the app factory that assembles them (`streams/app.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from paystream.core.settings import Settings
from streams.pipeline import Pipeline

__all__ = ["Worker"]


@dataclass
class Worker:
    """The Faust app plus the pieces tests and views reach for."""

    app: faust.App
    settings: Settings
    pipeline: Pipeline
    registry: CollectorRegistry
    state_table: Any
    dedup_table: Any
    reconciliation: Any = None

    @property
    def datadir(self) -> Path:
        return Path(self.app.conf.datadir)
