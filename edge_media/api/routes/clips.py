"""Events, clips, signed clip links and misdetection flags: everything a viewer of a camera may use."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from ...access import Principal
from ...privacy.flags import FlagRequest, Flags
from ...service.catalog import ClipRecord
from ...service.flagging import flag_clip
from ..auth import Auth, State, own_source, sources
from ..schemas import ClipOut, ClipPage, EventOut, EventPage, FlagIn, FlagOut, Link, NewFlag, iso
from ..state import ApiState

router = APIRouter()

Limit = Annotated[int, Query(ge=1, le=500, description="Items per page")]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]


# Times go out as ISO text (to the millisecond) and may come back as ``since``/``until``: a float round trip can
# land a hair after the event's own start, which must still count as "at" it.
EPSILON_S = 1e-6


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # naive: UTC
    return aware.timestamp() - EPSILON_S


@router.get("/api/v1/events", response_model=EventPage, tags=["events"])
def events(state: State, who: Auth, camera: Annotated[str | None, Query(max_length=64)] = None,
           label: Annotated[str | None, Query(max_length=64)] = None, since: datetime | None = None,
           until: datetime | None = None, limit: Limit = 50, cursor: Cursor = None) -> EventPage:
    """Events of the caller's cameras from recorded clips, newest first; ``since`` <= start < ``until``."""
    allowed = {own_source(state, who, camera)} if camera is not None else sources(state, who)
    page = state.clips.events(allowed, limit=limit, cursor=cursor, label=label, since=_epoch(since),
                              until=_epoch(until))  # a bad cursor is a UsageError: 422
    return EventPage(items=[EventOut.of(e) for e in page.items], next_cursor=page.next_cursor)


def _flags_by_clip(state: ApiState, clips: Iterable[ClipRecord]) -> dict[str, list[FlagOut]]:
    """Each clip's flags; a flag's camera is its clip's (the catalog already named it)."""
    camera_of = {c.clip_id: c.camera for c in clips}
    out: dict[str, list[FlagOut]] = {}
    if not camera_of:
        return out
    for f in Flags(state.hub.ctx.db).list_flags():
        if f.clip_id in camera_of:
            out.setdefault(f.clip_id, []).append(FlagOut.of(f, camera_of[f.clip_id]))
    return out


@router.get("/api/v1/clips", response_model=ClipPage, tags=["clips"])
def clips(state: State, who: Auth, camera: Annotated[str | None, Query(max_length=64)] = None,
          limit: Limit = 50, cursor: Cursor = None) -> ClipPage:
    allowed = {own_source(state, who, camera)} if camera is not None else sources(state, who)
    page = state.clips.clips(allowed, limit=limit, cursor=cursor)
    flags = _flags_by_clip(state, page.items)
    return ClipPage(items=[ClipOut.of(c, flags.get(c.clip_id, [])) for c in page.items],
                    next_cursor=page.next_cursor)


def own_clip(state: ApiState, who: Principal, clip_id: str) -> ClipRecord:
    """The clip if ``who`` may see it; 404 otherwise, as for a clip that does not exist."""
    clip = state.clips.get(clip_id) if len(clip_id) <= 128 else None
    if clip is None or clip.camera is None or clip.camera not in sources(state, who):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no clip {clip_id!r}")
    return clip


@router.get("/api/v1/clips/{clip_id}", response_model=ClipOut, tags=["clips"])
def clip(clip_id: str, state: State, who: Auth) -> ClipOut:
    c = own_clip(state, who, clip_id)
    return ClipOut.of(c, _flags_by_clip(state, [c]).get(c.clip_id, []))


@router.post("/api/v1/clips/{clip_id}/link", response_model=Link, tags=["clips"])
def link(clip_id: str, state: State, who: Auth) -> Link:
    """A short-lived URL that plays the clip: an S3 presigned GET for a clip in S3, else a link signed by the hub
    (the local store, or a clip not uploaded yet). It works without a token, for this user, until it expires."""
    c = own_clip(state, who, clip_id)
    ttl = state.hub.config.api.link_ttl_s
    store = state.hub.ctx.store
    if c.location == "stored" and c.key is not None and store.local_file(c.key) is None:
        expires = state.links.clock() + ttl
        return Link(url=store.presigned_get_object(c.key, expires_s=ttl), expires_at=iso(expires) or "")
    signed = state.links.link(c.clip_id, who.name, ttl)
    return Link(url=signed.url, expires_at=iso(signed.expires_at) or "")


@router.post("/api/v1/clips/{clip_id}/flags", response_model=NewFlag, status_code=status.HTTP_201_CREATED,
             tags=["feedback"])
def flag(clip_id: str, body: FlagIn, state: State, who: Auth) -> NewFlag:
    """Flag an event of the clip as wrong, or one the model missed: the same check and store as
    ``edge-media feedback flag``."""
    c = own_clip(state, who, clip_id)
    request = FlagRequest(kind=body.kind, label=body.label, truth=body.truth, actor=f"api:{who.name}")
    outcome = flag_clip(state.hub.ctx, c, request)
    f = outcome.flag
    return NewFlag(**FlagOut.of(f, c.camera).model_dump(), partner_queued=outcome.partner_queued)


@router.get("/api/v1/flags", response_model=list[FlagOut], tags=["feedback"])
def flags(state: State, who: Auth, camera: Annotated[str | None, Query(max_length=64)] = None) -> list[FlagOut]:
    allowed = {own_source(state, who, camera)} if camera is not None else sources(state, who)
    names = {state.hub.ctx.camera_hash(s): s for s in allowed}
    return [FlagOut.of(f, names[f.camera_hash]) for f in Flags(state.hub.ctx.db).list_flags()
            if f.camera_hash in names]
