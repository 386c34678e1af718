"""Serving the ingress: uvicorn with httptools, plus a bound on request heads.

uvicorn's httptools protocol keeps every header line of a request, with no size
limit, until the head is complete; one unauthenticated connection could grow the
process without bound (found by tests/security/test_slow_and_huge.py). This protocol
counts the bytes of each request head and answers 431 and closes the connection
once they pass `MAX_HEAD_BYTES`. (h11 has such a limit but is markedly slower.)
"""

from __future__ import annotations

from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["MAX_HEAD_BYTES", "BoundedHttpToolsProtocol", "serve"]

MAX_HEAD_BYTES = 64 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools with a limit on the request line plus headers of each request."""

    _head_bytes = 0
    _in_head = True

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse_head()

    def _refuse_head(self) -> None:
        message = b"request header fields too large"
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
                             b"content-length: " + str(len(message)).encode() + b"\r\nconnection: close\r\n\r\n"
                             + message)
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0


def serve(app: Any, *, host: str, port: int) -> None:
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, loop="uvloop",
                http=BoundedHttpToolsProtocol, timeout_graceful_shutdown=10, server_header=False)
