"""Turns per-frame detections into events (pure logic, no I/O: exhaustively unit tested).

An event starts when a label persists for ``min_frames`` consecutive detect frames; its start is
the *first* of those frames (the true onset, so the pre-roll is measured from there). It ends
``post_roll_s`` after the label was last seen. An event longer than ``max_clip_s`` is split into
``continued`` events without a gap (bounded events for reports; cutting *clips* is the job of
:class:`~edge_media.events.clips.ClipDecider`, which keeps a split inside one clip). ``merge_gap_s``
waits that much longer before deciding an event is over, so activity that resumes shortly after
joins the same clip. ``cooldown_s`` suppresses new events for a while after one ended (notification
fatigue), never cutting a running one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from recorder.events import Event


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    min_frames: int = 2
    post_roll_s: float = 5.0
    max_clip_s: float = 300.0
    merge_gap_s: float = 0.0
    cooldown_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Transition:
    kind: Literal["start", "end"]
    event: Event


class EventTracker:
    def __init__(self, camera: str, label: str, settings: TrackerSettings) -> None:
        self.camera, self.label, self.s = camera, label, settings
        self.active: Event | None = None
        self._run_start: float | None = None
        self._run_len = 0
        self._run_score = 0.0
        self._last_end: float | None = None

    def update(self, t: float, detected: bool, score: float = 0.0) -> list[Transition]:
        """Feed one detect frame at stream time ``t``; returns the transitions it caused."""
        self._track_run(t, detected, score)
        if self.active is None:
            return self._maybe_start(t)
        out: list[Transition] = []
        ev = self.active
        if detected:
            ev = self.active = replace(ev, last_seen=t, score=max(ev.score, score))
        if t - ev.start >= self.s.max_clip_s:
            out.append(self._end(min(t, ev.start + self.s.max_clip_s)))
            if t - ev.last_seen < self.s.post_roll_s:  # still busy: carry on in a new clip
                self.active = Event(self.label, ev.score, start=t, last_seen=ev.last_seen, continued=True)
                out.append(Transition("start", self.active))
        elif t - ev.last_seen >= self.s.post_roll_s + self.s.merge_gap_s:
            out.append(self._end(ev.last_seen + self.s.post_roll_s))
        return out

    def flush(self, t: float) -> list[Transition]:
        """End any open event at ``t`` (shutdown, disconnect)."""
        self._run_start, self._run_len = None, 0
        if self.active is None:
            return []
        return [self._end(min(t, self.active.last_seen + self.s.post_roll_s))]

    def _track_run(self, t: float, detected: bool, score: float) -> None:
        if not detected:
            self._run_start, self._run_len, self._run_score = None, 0, 0.0
            return
        if self._run_start is None:
            self._run_start = t
        self._run_len += 1
        self._run_score = max(self._run_score, score)

    def _maybe_start(self, t: float) -> list[Transition]:
        if self._run_start is None or self._run_len < self.s.min_frames:
            return []
        start = self._run_start
        if self._last_end is not None:
            if t - self._last_end < self.s.cooldown_s:
                return []
            start = max(start, self._last_end + self.s.cooldown_s)
        self.active = Event(self.label, self._run_score, start=start, last_seen=t)
        return [Transition("start", self.active)]

    def _end(self, end: float) -> Transition:
        assert self.active is not None
        done = replace(self.active, end=max(end, self.active.start))
        self.active, self._last_end = None, done.end
        return Transition("end", done)
