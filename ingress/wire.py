"""The ASGI edge of a webhook request: headers, body with limits, and the reply.

Kept free of Starlette's `Request`/`Response` objects because this is the hot
path; both the fast path and the FastAPI routes build a `WebhookRequest` from
the same ASGI scope and receive callable.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

import orjson
from starlette.types import Receive, Scope, Send

from ingress.exceptions import BadRequestError

__all__ = ["Reply", "WebhookRequest", "random_ids"]


class WebhookRequest:
    """Lower-case header names → values (latin-1, as HTTP defines), and the body stream."""

    __slots__ = ("_receive", "headers")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.headers: dict[str, str] = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self._receive = receive

    def content_type(self) -> str:
        """The JSON content type of the request, or 415."""
        content_type = self.headers.get("content-type", "")
        media_type = content_type.split(";", 1)[0].strip().lower()
        suffixed = media_type.startswith("application/") and media_type.endswith("+json")
        if media_type != "application/json" and not suffixed:
            raise BadRequestError(415, "unsupported_media_type", "content type must be application/json")
        return content_type

    async def body(self, max_bytes: int, timeout_s: float) -> bytes:
        """The whole body, or 413 as soon as it exceeds `max_bytes` (nothing beyond is buffered).

        Works for chunked bodies without Content-Length; a body that trickles in slower
        than `timeout_s` in total is cut off with 408, so slow senders cannot hold memory.
        """
        declared = self.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BadRequestError(400, "malformed_headers", "Content-Length is not a number")
            if int(declared) > max_bytes:
                raise BadRequestError(413, "body_too_large", f"body exceeds {max_bytes} bytes")
        message = await self._receive()  # usually the whole body arrives in the first message
        chunk = message.get("body", b"")
        if not message.get("more_body", False) and message["type"] == "http.request":
            if len(chunk) > max_bytes:
                raise BadRequestError(413, "body_too_large", f"body exceeds {max_bytes} bytes")
            return chunk  # type: ignore[no-any-return]
        chunks = [chunk]
        size = len(chunk)
        try:
            async with asyncio.timeout(timeout_s):
                while message["type"] == "http.request" and message.get("more_body", False):
                    message = await self._receive()
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > max_bytes:
                        raise BadRequestError(413, "body_too_large", f"body exceeds {max_bytes} bytes")
                    chunks.append(chunk)
        except TimeoutError as exc:
            raise BadRequestError(408, "body_timeout", f"body not received within {timeout_s:g}s") from exc
        if message["type"] == "http.disconnect":
            raise BadRequestError(400, "client_disconnected", "the client went away before the body was complete")
        return b"".join(chunks)


@dataclass(slots=True)
class Reply:
    """A JSON answer, sent as two raw ASGI messages."""

    status: int
    payload: dict[str, object]
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        return orjson.dumps(self.payload)

    async def send(self, send: Send) -> None:
        body = self.body()
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


def random_ids() -> tuple[str, str, str]:
    """(uuid4 string, 16 hex chars, 32 hex chars) from one urandom call; uuid.uuid4() costs 4 µs."""
    raw = bytearray(os.urandom(40))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}", h[32:48], h[48:80]
