"""``create_app(hub)``: the FastAPI app of a running hub.

Every route needs a bearer token except those in :data:`PUBLIC_PATHS` (health, the signed media links, the
static review page and the docs). That is enforced twice: the authenticated routers carry the auth dependency
for all their routes, and :func:`create_app` refuses to build an app in which any other route lacks it.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute

from uploader import StoreError

from ..errors import EdgeMediaError, UsageError
from ..privacy.flags import AlreadyFlagged
from ..service.consenting import NoticeNotCurrent
from .access_log import AccessLog
from .auth import principal
from .body_limit import BodyLimit
from .docs import DOCS_PATH, mount_docs
from .headers import SecurityHeaders
from .hub import ApiHub
from .routes import clips, media, owner, sources
from .schemas import Health
from .state import ApiState
from .ui import mount_ui

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
PUBLIC_PATHS = frozenset({"/api/v1/health", "/api/v1/media/{clip_id}", "/", DOCS_PATH})
DEGRADED_STATES = ("retrying", "failed")


@cache  # read from the installed metadata once: a lookup walks sys.path (milliseconds per health check)
def _version() -> str:
    try:
        return version("edge-media")
    except PackageNotFoundError:
        return "unknown"


def create_app(hub: ApiHub) -> FastAPI:
    app = FastAPI(title="edge-media hub API", version=_version(), openapi_url=f"{API_PREFIX}/openapi.json",
                  docs_url=None, redoc_url=None)  # /docs: mount_docs, with no CDN
    app.state.api = ApiState.for_hub(hub)
    app.add_middleware(BodyLimit)  # innermost of the three: its 413s are logged and get the security headers
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog)
    _add_error_handlers(app)
    public = APIRouter()

    @public.get(f"{API_PREFIX}/health", response_model=Health, tags=["hub"])
    def health(request: Request) -> Health:
        """Public: no names, only whether every source is running."""
        live = request.app.state.api.hub.live.snapshot()
        bad = any(s.state in DEGRADED_STATES for s in live)
        return Health(status="degraded" if bad else "ok", version=_version())

    @public.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    app.include_router(public)
    app.include_router(media.router)
    authed = APIRouter(dependencies=[Depends(principal)])
    for module in (sources, clips, owner):
        authed.include_router(module.router)
    app.include_router(authed)
    mount_ui(app)
    mount_docs(app, f"{API_PREFIX}/openapi.json")
    check_default_deny(app)
    return app


def check_default_deny(app: FastAPI) -> None:
    """Every route outside PUBLIC_PATHS depends on :func:`principal`; raise at build time otherwise."""
    for route in app.routes:
        if not isinstance(route, APIRoute) or route.path in PUBLIC_PATHS:
            continue
        calls = {d.call for d in route.dependant.dependencies}
        if principal not in calls and not any(_needs(d, principal) for d in route.dependant.dependencies):
            raise RuntimeError(f"route {route.path} has no authentication and is not listed as public")


def _needs(dependant, fn) -> bool:
    return any(d.call is fn or _needs(d, fn) for d in dependant.dependencies)


def _add_error_handlers(app: FastAPI) -> None:
    """Domain errors as JSON ``{"detail": ...}``: bad input 422, a conflict 409, the store or the clip's data
    unreachable 503. Their messages never carry secrets (the error base's promise)."""

    @app.exception_handler(EdgeMediaError)
    def domain(_request: Request, exc: EdgeMediaError) -> JSONResponse:
        if isinstance(exc, AlreadyFlagged | NoticeNotCurrent):
            code = 409
        elif isinstance(exc, UsageError):
            code = 422
        else:
            code = 503
            log.warning("API request failed: %s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=code)

    @app.exception_handler(StoreError)
    def store(_request: Request, exc: StoreError) -> JSONResponse:
        log.warning("API request failed: storage error %s", exc.code)
        return JSONResponse({"detail": f"storage unavailable ({exc.code}); try again"}, status_code=503)
