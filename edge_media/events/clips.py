"""When a clip starts, continues and ends: the one clip-decision path (pure logic, no I/O).

Both the camera pipeline and an unpaired microphone feed a :class:`ClipDecider` with event
transitions (motion tracker, audio-event logic, a paired microphone), the stream clock, the
spool-full gate, restriction and shutdown, and drive their recorder from the small frozen
decisions it returns. The recorder only carries them out at packet level (keyframes, pre-roll).

Rules:
- one clip holds every event that overlaps it; it ends when the last of them has ended, at the
  latest end among them. An event ending and its continuation starting in the same batch (an event
  split at its maximum length) do not end the clip;
- a clip opens ``pre_roll_s`` before the onset of the event that opens it — unless the spool is
  full or the camera is restricted; such an event is still tracked and joins a later clip;
- a clip never grows past ``max_clip_s`` of stream time: at that point it is cut at the next
  keyframe and continued from that same keyframe, without pre-roll, holding the events still open
  (so consecutive clips neither overlap nor leave a gap; a carried event starts before its clip);
- shutdown, disconnect and restriction close the clip at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from recorder.events import Event

from .tracker import Transition


@dataclass(frozen=True, slots=True)
class ClipSettings:
    pre_roll_s: float = 5.0
    max_clip_s: float = 300.0

    def __post_init__(self) -> None:
        if self.pre_roll_s < 0 or self.max_clip_s <= 0:
            raise ValueError("pre_roll_s must be >= 0 and max_clip_s > 0")


@dataclass(frozen=True, slots=True)
class StartClip:
    """Open a clip at the newest keyframe at or before ``at`` holding ``events`` (if the recorder
    still holds the previous clip, waiting for its end, that clip goes on instead)."""

    at: float
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class UpdateClip:
    """Record this event (joined, or its new end) in the open clip."""

    event: Event


@dataclass(frozen=True, slots=True)
class CutClip:
    """``max_clip_s``: close the clip at the first keyframe at or after ``at`` and continue from
    that same keyframe, without pre-roll, in a new clip holding ``events``."""

    at: float
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class EndClip:
    """Close the clip once it reaches stream time ``at``; ``now``: at once (shutdown, restriction)."""

    at: float
    now: bool = False


@dataclass(frozen=True, slots=True)
class NoClip:
    """An event that opens no clip (it is still tracked and joins a later one)."""

    event: Event
    reason: Literal["spool_full", "restricted"]


Decision = StartClip | UpdateClip | CutClip | EndClip | NoClip


class ClipDecider:
    def __init__(self, settings: ClipSettings | None = None) -> None:
        self.s = settings or ClipSettings()
        self.restricted = False  # the owner restricted the source: open no new clip
        self._open: dict[tuple[str, float], Event] = {}  # events going on, in a clip or not
        self._clip = False  # a clip is open
        self._clip_end = float("-inf")  # latest end among the clip's ended events
        self._cut_at: float | None = None  # stream time at which the open clip reaches max_clip_s

    @property
    def recording(self) -> bool:
        return self._clip

    @property
    def open_events(self) -> tuple[Event, ...]:
        return tuple(self._open.values())

    def feed(self, transitions: Sequence[Transition], *,
             can_record: bool | Callable[[], bool] = True) -> list[Decision]:
        """One batch of transitions in arrival order. ``can_record``: the spool has room; a callable is
        asked only when a clip would open (at most once per batch), so an event that joins the open
        clip or that a restriction keeps out is never counted as a quota refusal."""
        out: list[Decision] = []
        asked: list[bool] = []

        def room() -> bool:
            if not asked:
                asked.append(can_record() if callable(can_record) else can_record)
            return asked[0]

        for tr in transitions:
            out += self._start(tr.event, room) if tr.kind == "start" else self._end(tr.event)
        if self._clip and not self._open:  # decided per batch: a split event's two halves stay together
            out.append(EndClip(self._clip_end))
            self._clip, self._cut_at = False, None
        return out

    def tick(self, t: float) -> list[Decision]:
        """The stream clock (every packet or block): cuts a clip that reached ``max_clip_s``."""
        if self._cut_at is None or t < self._cut_at:
            return []
        at, self._cut_at = self._cut_at, self._cut_at + self.s.max_clip_s
        return [CutClip(at, self.open_events)]

    def opened(self, first_time: float | None) -> None:
        """The recorder's clip really begins at ``first_time`` (its first keyframe, up to a GOP
        before the asked instant; or an earlier clip it extended): measure ``max_clip_s`` from there."""
        if self._clip and first_time is not None:
            self._cut_at = first_time + self.s.max_clip_s

    def close(self, t: float) -> list[Decision]:
        """Shutdown, disconnect or restriction at ``t``: whatever is open closes now, and events
        still going on are forgotten (their sources were flushed or are gone)."""
        self._open.clear()
        self._clip, self._cut_at, self._clip_end = False, None, float("-inf")
        return [EndClip(t, now=True)]

    def _start(self, ev: Event, room: Callable[[], bool]) -> list[Decision]:
        self._open[ev.key] = ev
        if self._clip:
            return [UpdateClip(ev)]  # overlapping events share one clip
        if self.restricted:
            return [NoClip(ev, "restricted")]
        if not room():
            return [NoClip(ev, "spool_full")]
        at = ev.start - self.s.pre_roll_s
        self._clip, self._clip_end, self._cut_at = True, float("-inf"), at + self.s.max_clip_s
        return [StartClip(at, self.open_events)]

    def _end(self, ev: Event) -> list[Decision]:
        self._open.pop(ev.key, None)
        if not self._clip:
            return []
        self._clip_end = max(self._clip_end, ev.until)
        return [UpdateClip(ev)]
