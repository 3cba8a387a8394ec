"""Bearer-token authentication and the role checks every route declares.

Default deny: the app's authenticated router carries :func:`principal` as a dependency, so a route added there
needs a valid token without saying so; the few public routes are listed in ``app.PUBLIC_PATHS`` and the app
refuses to start if any other route lacks this dependency.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..access import Principal, sources_of
from .state import ApiState, api_state, client_address

bearer = HTTPBearer(auto_error=False, description="An API token from `edge-media users add`.")


def too_many(state: ApiState, address: str) -> HTTPException:
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed authentications from this address; "
                         "wait a minute", headers={"Retry-After": str(state.limiter.retry_after(address))})


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def principal(request: Request, state: Annotated[ApiState, Depends(api_state)],
              creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    address = client_address(request)
    if state.limiter.blocked(address):
        raise too_many(state, address)
    if creds is None:
        raise unauthorized("missing bearer token (Authorization: Bearer <token>)")
    user = state.users.authenticate(creds.credentials)
    if user is None:
        state.limiter.fail(address)
        raise unauthorized("invalid or revoked token")
    return user.principal()


async def owner(who: Annotated[Principal, Depends(principal)]) -> Principal:  # async: no I/O
    if not who.is_owner:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an owner may do this")
    return who


def sources(state: ApiState, who: Principal) -> frozenset[str]:
    return sources_of(who, state.hub.config)


def own_source(state: ApiState, who: Principal, name: str) -> str:
    """``name`` if ``who`` may see it; 404 otherwise, exactly as for a source that does not exist."""
    if name not in sources(state, who):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera {name!r}")
    return name


Auth = Annotated[Principal, Depends(principal)]
Owner = Annotated[Principal, Depends(owner)]
State = Annotated[ApiState, Depends(api_state)]
