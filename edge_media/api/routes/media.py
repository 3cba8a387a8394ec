"""``GET /api/v1/media/{clip_id}``: a clip played through a link the hub signed (no bearer token).

The signature proves the hub issued the link for this clip, user and expiry; the user is checked again now
(revoked, or no longer allowed the camera: 403). Range requests are served, so a ``<video>`` element seeks.
A clip uploaded to S3 after its link was issued is no longer on the hub: the link then redirects to an S3
presigned GET for what is left of its lifetime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, RedirectResponse, Response

from ...access import sources_of
from ..auth import State, too_many
from ..state import client_address

router = APIRouter()

MEDIA_TYPES = {".mp4": "video/mp4", ".mkv": "video/x-matroska", ".m4a": "audio/mp4"}


@router.get("/api/v1/media/{clip_id}", tags=["clips"], response_class=Response,
            responses={200: {"content": {"video/mp4": {}}, "description": "The clip (Range requests supported)"},
                       206: {"description": "Part of the clip"}, 403: {"description": "Expired or tampered link"}})
def media(clip_id: str, request: Request, state: State, u: Annotated[str, Query(max_length=64)],
          exp: Annotated[int, Query(ge=0, le=2**40)], sig: Annotated[str, Query(max_length=128)]) -> Response:
    address = client_address(request)
    if state.limiter.blocked(address):
        raise too_many(state, address)
    user = state.users.get(u)
    clip = state.clips.get(clip_id) if len(clip_id) <= 128 else None
    allowed = (state.links.valid(clip_id, u, exp, sig) and user is not None and user.active and clip is not None
               and clip.camera is not None and clip.camera in sources_of(user.principal(), state.hub.config))
    if not allowed or clip is None:
        state.limiter.fail(address)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this link is expired, altered or no longer valid")
    local = Path(clip.local_path) if clip.local_path and Path(clip.local_path).is_file() else None
    if local is None and clip.key is not None:
        local = state.hub.ctx.store.local_file(clip.key)
        if local is None:  # uploaded to S3 since the link was issued
            left = max(1, exp - int(state.links.clock()))
            return RedirectResponse(state.hub.ctx.store.presigned_get_object(clip.key, expires_s=left))
    if local is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"clip {clip_id} is no longer on this hub")
    return FileResponse(local, media_type=MEDIA_TYPES.get(local.suffix.lower(), "application/octet-stream"),
                        headers={"Cache-Control": "private, no-store"})
