"""The baselines: a FastAPI app and a bare ASGI app that only read the body and answer 200.

The ingress's webhook path bypasses FastAPI (`ingress/fastpath.py`), so a FastAPI
baseline alone would flatter it; the bare ASGI app is the floor any Python ASGI
server stack can reach with the same body read.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()
ACCEPTED = b'{"status":"accepted"}'


@app.post("/webhooks/stripe")
async def receive(request: Request) -> Response:
    await request.body()
    return Response(ACCEPTED, media_type="application/json")


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body of any POST and answers 200; anything else 404 (enough for a readiness probe)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    status = 404
    if scope["method"] == "POST":
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        b"".join(chunks)
        status = 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ACCEPTED)).encode())]})
    await send({"type": "http.response.body", "body": ACCEPTED})
