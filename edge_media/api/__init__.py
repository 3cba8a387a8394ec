"""The hub's REST API and review page: FastAPI served by uvicorn inside ``edge-media run``.

Owns the HTTP surface only: authentication (tokens via ``edge_media.access``), per-camera access, signed clip
links, and routes that call the same domain functions as the CLI (flagging, consent, owner rights). It never
writes another package's tables itself and never logs a token, a link signature or a query string.
"""

from .app import create_app
from .hub import ApiHub
from .server import ApiBindError, ApiServer

__all__ = ["ApiBindError", "ApiHub", "ApiServer", "create_app"]
