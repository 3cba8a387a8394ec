"""One access-log line per request, without the query string: links carry their signature there and nothing
in a URL may reach the log (uvicorn's own access log is turned off for that reason)."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("edge_media.api.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            client = scope.get("client")
            log.info("%s %s %s %d %.1fms", client[0] if client else "-", scope["method"], scope["path"], status,
                     (time.perf_counter() - started) * 1000)
