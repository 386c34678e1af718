"""A minimal Confluent-compatible schema registry client (register + lookup by id)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from schemas.exceptions import RegistryError

__all__ = ["HttpSchemaRegistry"]

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class HttpSchemaRegistry:
    """Talks to `/subjects/{subject}/versions` and `/schemas/ids/{id}`; caches both."""

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self._url = url.rstrip("/")
        self._timeout_s = timeout_s
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        text = json.dumps(schema, sort_keys=True)
        cached = self._ids.get((subject, text))
        if cached is not None:
            return cached
        try:
            response = httpx.post(
                f"{self._url}/subjects/{subject}/versions",
                content=json.dumps({"schema": text}),
                headers={"Content-Type": _CONTENT_TYPE},
                timeout=self._timeout_s,
            )
        except httpx.HTTPError as exc:
            raise RegistryError(f"schema registry unreachable: {exc}") from exc
        if response.status_code != 200:
            raise RegistryError(f"schema registry refused {subject}: HTTP {response.status_code}")
        schema_id = int(response.json()["id"])
        self._ids[(subject, text)] = schema_id
        self._schemas[schema_id] = schema
        return schema_id

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        try:
            response = httpx.get(f"{self._url}/schemas/ids/{schema_id}", timeout=self._timeout_s)
        except httpx.HTTPError as exc:
            raise RegistryError(f"schema registry unreachable: {exc}") from exc
        if response.status_code != 200:
            raise RegistryError(f"schema id {schema_id} not found: HTTP {response.status_code}")
        schema: dict[str, Any] = json.loads(response.json()["schema"])
        self._schemas[schema_id] = schema
        return schema
