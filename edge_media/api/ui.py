"""The review page: static files under ``/ui/`` with headers that keep it to itself.

The page is plain HTML + JS (no build step, nothing from another origin). Its headers say so to the browser:
scripts, styles and API calls only from this origin; media may come from the S3 store's presigned links (another
origin); no framing; and no ``Referer``, so a clip link's signature never travels to anyone else.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
UI_PATH = "/ui"

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; media-src 'self' https: http:; object-src 'none'; "
                               "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # The page is small and changes with the package: always revalidate (ETag) so an upgrade shows at once.
    "cache-control": "no-cache",
}


class ReviewPage(StaticFiles):
    """``StaticFiles`` that adds :data:`SECURITY_HEADERS` to every response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def mount_ui(app: FastAPI) -> None:
    """Serve the review page at ``/ui/`` (``index.html`` for the directory)."""
    app.mount(UI_PATH, ReviewPage(directory=STATIC_DIR, html=True, check_dir=False), name="ui")
