"""The API's JSON shapes (they are the OpenAPI schema the review page and schemathesis read)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..privacy.flags import Flag
from ..service.catalog import ClipRecord
from ..service.live import LastEvent, SourceLive
from .clipview import EventItem


def iso(epoch: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC (milliseconds: events of one clip may start within a second)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(Out):
    status: Literal["ok", "degraded"]
    version: str


class Me(Out):
    name: str
    role: Literal["owner", "viewer"]
    owner: str | None
    cameras: list[str]


class LastEventOut(Out):
    label: str
    event_id: str
    start: str
    end: str | None
    score: float

    @classmethod
    def of(cls, e: LastEvent | None) -> LastEventOut | None:
        return None if e is None else cls(label=e.label, event_id=e.event_id, start=iso(e.start) or "",
                                          end=iso(e.end), score=round(e.score, 4))


class Camera(Out):
    name: str
    kind: str
    owner: str
    state: str
    connected: bool
    fps: float | None
    restricted: bool
    last_motion: LastEventOut | None
    last_audio: LastEventOut | None

    @classmethod
    def of(cls, live: SourceLive, owner: str) -> Camera:
        return cls(name=live.name, kind=live.kind, owner=owner, state=live.state, connected=live.connected,
                   fps=live.fps, restricted=live.restricted, last_motion=LastEventOut.of(live.motion),
                   last_audio=LastEventOut.of(live.audio))


class Restriction(Out):
    camera: str
    restricted: bool


class EventOut(Out):
    event_id: str
    clip_id: str
    camera: str
    label: str
    score: float
    start: str
    end: str

    @classmethod
    def of(cls, e: EventItem) -> EventOut:
        return _event_out(e)


@lru_cache(maxsize=65536)
def _event_out(e: EventItem) -> EventOut:
    # Events never change, and pollers ask for the same page every second: rendering one (times to ISO text,
    # the model) was most of an events request's own cost. Responses only read these, never change them.
    return EventOut(event_id=e.event_id, clip_id=e.clip_id, camera=e.camera, label=e.label, score=round(e.score, 4),
                    start=iso(e.start) or "", end=iso(e.end) or "")


class EventPage(Out):
    items: list[EventOut]
    next_cursor: str | None


class FlagOut(Out):
    flag_id: str
    clip_id: str
    camera: str | None
    kind: Literal["wrong", "missed"]
    label: str
    truth: str | None
    score: float | None
    created: str
    partner_eligible: bool

    @classmethod
    def of(cls, f: Flag, camera: str | None) -> FlagOut:
        return cls(flag_id=f.flag_id, clip_id=f.clip_id, camera=camera, kind=f.kind, label=f.label, truth=f.truth,
                   score=f.score, created=iso(f.created) or "", partner_eligible=f.partner_eligible)


class NewFlag(FlagOut):
    partner_queued: bool


class ClipEvent(Out):
    label: str
    score: float
    start_s: float  # seconds into the clip
    end_s: float


class ClipOut(Out):
    clip_id: str
    camera: str
    owner: str
    start: str | None  # None: the clip's sidecar cannot be read right now
    end: str
    audio: bool | None
    video: bool | None
    events: list[ClipEvent] | None
    retain_until: str | None  # None: not uploaded yet
    flags: list[FlagOut]

    @classmethod
    def of(cls, c: ClipRecord, flags: list[FlagOut]) -> ClipOut:
        d = c.details
        events = None if d is None else [
            ClipEvent(label=e.label, score=round(float(e.score), 4),
                      start_s=round(max(0.0, e.start - d.stream_start), 3),
                      end_s=round(max(0.0, e.until - d.stream_start), 3)) for e in d.events]
        return cls(clip_id=c.clip_id, camera=c.camera or "", owner=c.owner, start=iso(d.wall_start) if d else None,
                   end=iso(c.wall_end) or "", audio=c.has_audio, video=c.has_video, events=events,
                   retain_until=iso(c.retain_until), flags=flags)


class ClipPage(Out):
    items: list[ClipOut]
    next_cursor: str | None


class Link(Out):
    url: str
    expires_at: str


class FlagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["wrong", "missed"]
    label: str = Field(min_length=1, max_length=64)
    truth: str | None = Field(default=None, min_length=1, max_length=64)


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notice_version: int = Field(ge=1, le=1_000_000)


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confirm: Literal["ERASE"] = Field(description='Must be "ERASE": erasure cannot be undone.')


class NoticeOut(Out):
    purpose: str
    version: int
    sha256: str
    text: str


class ConsentOut(Out):
    owner: str
    state: list[dict]
    history: list[dict]


class ConsentChangeOut(Out):
    owner: str
    purpose: str
    action: Literal["grant", "withdraw"]
    recorded: bool  # False: the ledger already said so (nothing written)
    consent_id: str | None
    at: str | None
    deleted_samples: int = 0
    retractions_written: int = 0
    retractions_owed: int = 0


class EraseOut(Out):
    objects: int
    spool_clips: int
    outbox_rows: int
    index_rows: int
    flags: int
    feedback: int


class RolloutStep(Out):
    at: str | None
    version: str | None
    step: str = Field(description="candidate, shadow, promoted, rejected, rolled_back, kept, verify, smoke_test, ...")
    message: str


class Rollout(Out):
    phase: str = Field(description="idle, shadow (a candidate runs beside the active model) or watch (promoted, "
                                   "can still be rolled back automatically)")
    since: str | None
    candidate: str | None
    previous: str | None = Field(description="What a rollback returns to (null: the model shipped with the hub)")
    steps: list[RolloutStep] = Field(description="The newest steps, oldest first")


class Model(Out):
    name: str
    version: str
    labels: list[str] = Field(default_factory=list, description="The event labels it reports (what may be flagged)")
    rollout: Rollout | None = Field(default=None, description="Signed releases of this model on this hub")


class Models(Out):
    models: list[Model]
