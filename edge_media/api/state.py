"""The API's per-app state: the hub, the users, the clip read model, the link signer and the failure limiter."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from ..access import UserStore
from .clipview import ClipView
from .hub import ApiHub
from .links import LinkSigner
from .ratelimit import FailureLimiter


@dataclass
class ApiState:
    hub: ApiHub
    users: UserStore
    clips: ClipView
    links: LinkSigner
    limiter: FailureLimiter

    @classmethod
    def for_hub(cls, hub: ApiHub) -> ApiState:
        api = hub.config.api
        return cls(hub=hub, users=UserStore(hub.ctx.db), clips=ClipView(hub.ctx),
                   links=LinkSigner(hub.ctx.secret, base_url=api.public_url),
                   limiter=FailureLimiter(api.auth_failures_per_minute))


async def api_state(request: Request) -> ApiState:  # async: no I/O, so no hop to the thread pool
    state: ApiState = request.app.state.api
    return state


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"
