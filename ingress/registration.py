"""The envelope schema, registered before the ingress serves, without ever blocking the event loop.

With a schema registry configured, envelopes are written in the Confluent wire
format, which needs the registry's id for our schema. The lifespan registers it
once (async client, bounded) before the server accepts requests; if the registry
is down then, the ingress still starts (so `/health` answers), `/ready` says
503, webhooks get 503 + `Retry-After` at once, and a background task keeps
trying. Nothing in the request path talks to the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from schemas.exceptions import RegistryError
from schemas.records import WebhookEnvelope
from schemas.registry import AsyncHttpSchemaRegistry
from schemas.serde import AvroSerde

__all__ = ["SchemaRegistration"]

log = logging.getLogger("paystream.ingress.registry")


class SchemaRegistration:
    """`ready` once the serde has its schema id (always, without a registry)."""

    def __init__(self, serde: AvroSerde[WebhookEnvelope], registry: AsyncHttpSchemaRegistry | None, subject: str,
                 *, retry_interval_s: float = 1.0, start_timeout_s: float = 2.0) -> None:
        self._serde = serde
        self._registry = registry
        self._subject = subject
        self._retry_interval_s = retry_interval_s
        self._start_timeout_s = start_timeout_s
        self._registered = registry is None
        self._retrying: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    @property
    def ready(self) -> bool:
        return self._registered

    async def _register(self) -> bool:
        assert self._registry is not None
        try:
            schema_id = await self._registry.register(self._subject, self._serde.raw_schema)
        except RegistryError as exc:
            self.last_error = str(exc)
            return False
        self._serde.use_schema_id(schema_id)
        self._registered, self.last_error = True, None
        log.info("envelope schema registered", extra={"subject": self._subject, "schema_id": schema_id})
        return True

    async def _retry_forever(self) -> None:
        while not await self._register():
            log.debug("schema registry still unavailable; retrying", extra={"error": self.last_error})
            await asyncio.sleep(self._retry_interval_s)

    async def start(self) -> None:
        if self._registered or self._retrying is not None:
            return
        try:
            async with asyncio.timeout(self._start_timeout_s):  # a hanging registry must not hold the startup
                registered = await self._register()
        except TimeoutError:
            self.last_error = f"schema registry did not answer within {self._start_timeout_s:g}s"
            registered = False
        if not registered:
            log.warning("schema registry unavailable at start; webhooks get 503 until it answers",
                        extra={"subject": self._subject, "error": self.last_error})
            self._retrying = asyncio.create_task(self._retry_forever())

    async def stop(self) -> None:
        task, self._retrying = self._retrying, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._registry is not None:
            await self._registry.aclose()
