"""A cap on request bodies. The API's bodies are a few hundred bytes (a flag, a grant, an erasure's confirmation);
without a cap FastAPI reads a body whole before the route's dependencies run, so even a caller without a token
could make the hub hold any number of megabytes, and a route that takes no body would act on a request whose
gigabytes uvicorn then drains. Here a body is read up to :data:`MAX_BODY_BYTES` before any route runs: a longer
one, declared or chunked, gets 413 and no route sees it (uvicorn drops the rest unread)."""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024
DETAIL = f"request body larger than {MAX_BODY_BYTES} bytes"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left before its body ended: nobody to answer
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await _refuse(send)
                return
            more = message.get("more_body", False)
        body: Message | None = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def replay() -> Message:
            nonlocal body
            if body is None:
                return await receive()  # after the body: the disconnect a streaming response listens for
            message, body = body, None
            return message

        await self.app(scope, replay, send)


async def _refuse(send: Send) -> None:
    content = json.dumps({"detail": DETAIL}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]})
    await send({"type": "http.response.body", "body": content})
