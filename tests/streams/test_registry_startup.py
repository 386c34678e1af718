"""A worker with a schema registry registers its schemas while it starts, never on the event loop later."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from paystream.core.broker import free_port
from paystream.core.settings import Settings
from paystream.dev.stories import all_stories
from schemas.exceptions import RegistryError
from streams.app import create_worker
from streams.state import fold_all
from tests.fixtures.registry import RegistryServer
from tests.streams.test_money import events_of


def settings(tmp_path: Path, registry_url: str) -> Settings:
    return Settings(kafka_bootstrap="127.0.0.1:9", embedded_broker=True, data_dir=tmp_path,
                    worker_port=free_port(), schema_registry_url=registry_url)


def test_every_worker_schema_is_registered_before_the_worker_starts(
        tmp_path: Path, registry_factory: Callable[..., RegistryServer]) -> None:
    server = registry_factory()
    worker = create_worker(settings(tmp_path, server.url))
    assert set(server.state["subjects"]) >= {"WebhookEnvelope-value", "PaymentEvent-value", "PaymentState-value",
                                             "ReconciliationWindow-value"}
    requests = server.state["requests"]
    story = all_stories(datetime(2026, 11, 2, tzinfo=UTC))[0]
    event = events_of(story)[0]
    encoded = worker.pipeline.event_serde.encode(event)
    worker.pipeline.state_serde.encode(fold_all([event])[event.payment_key])
    assert server.state["requests"] == requests, "an encode asked the registry"
    assert encoded[:1] == b"\x00"  # Confluent framing with the id registered at startup


def test_a_registry_down_at_startup_stops_the_worker_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="unreachable"):
        create_worker(settings(tmp_path, f"http://127.0.0.1:{free_port()}"))
