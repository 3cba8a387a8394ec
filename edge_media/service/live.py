"""Each source's live status for the API and the metrics: connection, frame rate, last events, restriction.

Fed by the hub's notices (connection changes, event starts and ends) and by the control loop's frame-count
samples; read by anyone at any time (a snapshot under a lock, no I/O).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace

from .bus import EventNotice, Notice, SourceNotice

FPS_WINDOW_S = 10.0


@dataclass(frozen=True)
class LastEvent:
    label: str
    event_id: str
    start: float  # epoch seconds
    end: float | None  # None while it lasts
    score: float


@dataclass(frozen=True)
class SourceLive:
    """One camera or microphone as the hub sees it now."""

    name: str
    kind: str  # "camera" | "microphone"
    state: str = "starting"  # starting, connected, retrying, failed, ended
    problem: str | None = None
    since: float = field(default_factory=time.time)  # when ``state`` began
    fps: float | None = None  # decoded frames per second over the last few seconds (cameras)
    restricted: bool = False
    motion: LastEvent | None = None
    audio: LastEvent | None = None  # the last audio event

    @property
    def connected(self) -> bool:
        return self.state == "connected"


class LiveStatus:
    def __init__(self, sources: dict[str, str]) -> None:
        """``sources``: name -> kind ("camera" or "microphone")."""
        self._lock = threading.Lock()
        self._live = {name: SourceLive(name, kind) for name, kind in sources.items()}
        self._frames: dict[str, deque[tuple[float, int]]] = {}

    def on_notice(self, notice: Notice) -> None:
        """A bus subscriber."""
        with self._lock:
            if not isinstance(notice, SourceNotice | EventNotice):
                return  # storage notices are not about a source
            cur = self._live.get(notice.source)
            if cur is None:
                return
            if isinstance(notice, SourceNotice):
                self._live[notice.source] = replace(cur, state=notice.state, problem=notice.problem, since=notice.at)
            elif isinstance(notice, EventNotice):
                last = LastEvent(notice.label, notice.event_id, notice.start, notice.end, notice.score)
                if notice.is_motion:
                    self._live[notice.source] = replace(cur, motion=last)
                else:
                    self._live[notice.source] = replace(cur, audio=last)

    def sample_frames(self, name: str, frames: int, now: float | None = None) -> None:
        """A source's decoded-frame counter, sampled by the control loop."""
        now = time.monotonic() if now is None else now
        with self._lock:
            samples = self._frames.setdefault(name, deque())
            samples.append((now, frames))
            while len(samples) > 2 and now - samples[0][0] > FPS_WINDOW_S:
                samples.popleft()
            cur = self._live.get(name)
            if cur is not None and len(samples) >= 2:
                (t0, f0), (t1, f1) = samples[0], samples[-1]
                fps = (f1 - f0) / (t1 - t0) if t1 > t0 and f1 >= f0 else None
                self._live[name] = replace(cur, fps=None if fps is None else round(fps, 2))

    def set_restricted(self, name: str, restricted: bool) -> None:
        with self._lock:
            cur = self._live.get(name)
            if cur is not None and cur.restricted != restricted:
                self._live[name] = replace(cur, restricted=restricted)

    def add(self, name: str, kind: str) -> None:
        with self._lock:
            self._live.setdefault(name, SourceLive(name, kind))

    def remove(self, name: str) -> None:
        with self._lock:
            self._live.pop(name, None)
            self._frames.pop(name, None)

    def get(self, name: str) -> SourceLive | None:
        with self._lock:
            return self._live.get(name)

    def snapshot(self) -> list[SourceLive]:
        with self._lock:
            return list(self._live.values())
