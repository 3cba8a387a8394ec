"""One camera's wiring: source events → pre-roll recorder; detections → tracker → clips.

The reader thread calls :meth:`CameraPipeline.handle` for every source event, the detect thread
calls :meth:`detect_batch` for frames of many cameras at once; a per-camera lock serialises the
two. Nothing here decodes or touches pixels.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from recorder import CameraRecorder, ClipEvent
from recorder.packets import MediaPacket

from .detect import MotionDetector, MotionResult, MotionSettings
from .events import Event, EventTracker, Transition
from .sources import Connected, DetectFrame, Disconnected, SourceEvent

log = logging.getLogger(__name__)


@dataclass
class CameraPipeline:
    name: str
    tracker: EventTracker
    motion: MotionSettings
    recorder: CameraRecorder | None = None  # None: analyse only, record nothing
    on_transition: Callable[[Transition], None] | None = None
    events: list[Event] = field(default_factory=list)  # every finished event, for reports
    motion_frames: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _shape: tuple[int, int] | None = None
    _needs_reset: bool = False
    _last_time: float = 0.0

    def handle(self, ev: SourceEvent) -> DetectFrame | None:
        """Route one source event; returns the frame when it needs detection."""
        if isinstance(ev, MediaPacket):
            if self.recorder is not None:
                with self._lock:
                    self.recorder.on_packet(ev)
            return None
        if isinstance(ev, DetectFrame):
            return ev
        with self._lock:
            if isinstance(ev, Connected):
                self._needs_reset = True  # a new connection may show a different scene
                if self.recorder is not None:
                    self.recorder.set_streams(ev.streams)
            elif isinstance(ev, Disconnected):
                self._finish(ev.time)
        return None

    def finish(self) -> None:
        """End open events and clips (shutdown)."""
        with self._lock:
            self._finish(self._last_time)

    def prepare(self, detector: MotionDetector, frame: DetectFrame) -> None:
        """Register/reset this camera in the detector; call from the detect thread only."""
        shape = frame.image.shape[:2]
        if shape != self._shape:
            detector.add_camera(self.name, shape, self.motion)
            self._shape, self._needs_reset = shape, False
        elif self._needs_reset:
            detector.reset(self.name)
            self._needs_reset = False

    def on_motion(self, result: MotionResult) -> None:
        with self._lock:
            self._last_time = max(self._last_time, result.time)
            self.motion_frames += int(result.motion)
            for tr in self.tracker.update(result.time, result.motion, result.score):
                self._apply(tr)

    def _finish(self, t: float) -> None:
        for tr in self.tracker.flush(max(t, self._last_time)):
            self._apply(tr)
        if self.recorder is not None:
            self.recorder.close()

    def _apply(self, tr: Transition) -> None:
        ev = tr.event
        clip_event = ClipEvent(label=ev.label, score=ev.score, start=ev.start, end=ev.end)
        if tr.kind == "start":
            log.info("%s: %s started at %.2f s (score %.3f)", self.name, ev.label, ev.start, ev.score)
            if self.recorder is not None:
                self.recorder.start(clip_event)
        else:
            log.info("%s: %s ended at %.2f s", self.name, ev.label, ev.end)
            self.events.append(ev)
            if self.recorder is not None:
                self.recorder.update(clip_event)
                self.recorder.stop(ev.end)
        if self.on_transition is not None:
            self.on_transition(tr)


def detect_batch(detector: MotionDetector, items: Sequence[tuple[CameraPipeline, DetectFrame]]) -> None:
    """One detector call for frames of many cameras; results go back to their pipelines."""
    for pipe, frame in items:
        pipe.prepare(detector, frame)
    results = detector.detect([(pipe.name, f.time, f.image) for pipe, f in items])
    for (pipe, _), result in zip(items, results, strict=True):
        pipe.on_motion(result)
