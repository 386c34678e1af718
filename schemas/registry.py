"""Minimal Confluent-compatible schema registry clients (register + lookup by id).

`HttpSchemaRegistry` is synchronous, for code on a worker thread (the sink decodes
on its database thread). `AsyncHttpSchemaRegistry` speaks the same API through
`httpx.AsyncClient`, for code on an event loop: a registry that is down must never
stall the loop (before issue 14 the ingress called `httpx.post` in the request
path, and every webhook and `/health` waited up to 5 s).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from schemas.exceptions import RegistryError

__all__ = ["AsyncHttpSchemaRegistry", "HttpSchemaRegistry"]

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class _Cache:
    """Both directions, shared by the two clients; the registry's answers never change for an id."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.ids: dict[tuple[str, str], int] = {}
        self.schemas: dict[int, dict[str, Any]] = {}

    @staticmethod
    def schema_text(schema: dict[str, Any]) -> str:
        return json.dumps(schema, sort_keys=True)

    def registered(self, subject: str, schema: dict[str, Any], text: str, response: httpx.Response) -> int:
        if response.status_code != 200:
            raise RegistryError(f"schema registry refused {subject}: HTTP {response.status_code}")
        try:
            schema_id = int(response.json()["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"schema registry answered {subject} without an id") from exc
        self.ids[(subject, text)] = schema_id
        self.schemas[schema_id] = schema
        return schema_id

    def fetched(self, schema_id: int, response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise RegistryError(f"schema id {schema_id} not found: HTTP {response.status_code}")
        schema: dict[str, Any] = json.loads(response.json()["schema"])
        self.schemas[schema_id] = schema
        return schema


class HttpSchemaRegistry:
    """Talks to `/subjects/{subject}/versions` and `/schemas/ids/{id}`; caches both. Blocking: not for event loops."""

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self._cache = _Cache(url)
        self._timeout_s = timeout_s

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        text = _Cache.schema_text(schema)
        cached = self._cache.ids.get((subject, text))
        if cached is not None:
            return cached
        try:
            response = httpx.post(f"{self._cache.url}/subjects/{subject}/versions",
                                  content=json.dumps({"schema": text}), headers={"Content-Type": _CONTENT_TYPE},
                                  timeout=self._timeout_s)
        except httpx.HTTPError as exc:
            raise RegistryError(f"schema registry unreachable: {exc}") from exc
        return self._cache.registered(subject, schema, text, response)

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        cached = self._cache.schemas.get(schema_id)
        if cached is not None:
            return cached
        try:
            response = httpx.get(f"{self._cache.url}/schemas/ids/{schema_id}", timeout=self._timeout_s)
        except httpx.HTTPError as exc:
            raise RegistryError(f"schema registry unreachable: {exc}") from exc
        return self._cache.fetched(schema_id, response)


class AsyncHttpSchemaRegistry:
    """The same API on one `httpx.AsyncClient` (connection reuse); `aclose()` when done."""

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self._cache = _Cache(url)
        self._client = httpx.AsyncClient(timeout=timeout_s)

    async def register(self, subject: str, schema: dict[str, Any]) -> int:
        text = _Cache.schema_text(schema)
        cached = self._cache.ids.get((subject, text))
        if cached is not None:
            return cached
        try:
            response = await self._client.post(f"{self._cache.url}/subjects/{subject}/versions",
                                               content=json.dumps({"schema": text}),
                                               headers={"Content-Type": _CONTENT_TYPE})
        except httpx.HTTPError as exc:
            raise RegistryError(f"schema registry unreachable: {type(exc).__name__}: {exc}") from exc
        return self._cache.registered(subject, schema, text, response)

    async def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        cached = self._cache.schemas.get(schema_id)
        if cached is not None:
            return cached
        try:
            response = await self._client.get(f"{self._cache.url}/schemas/ids/{schema_id}")
        except httpx.HTTPError as exc:
            raise RegistryError(f"schema registry unreachable: {type(exc).__name__}: {exc}") from exc
        return self._cache.fetched(schema_id, response)

    async def aclose(self) -> None:
        await self._client.aclose()
