"""One camera's wiring: source events → pre-roll recorder; detections → tracker → clips.

Threading rule: **every PyAV call for a camera happens on its reader thread.** The detect thread
only runs the tracker (pure Python) and queues the transitions it produces; the reader thread
applies them to the recorder before its next packet. Opening a clip copies codec parameters from
the input stream, and doing that on another thread while the reader thread decodes (PyAV releases
the GIL) crashed the process in a stress run. The same goes for restriction requests from the
control thread. Nothing here decodes or touches pixels.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
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
    can_record: Callable[[], bool] = lambda: True  # spool quota (stop-recording policy)
    restricted: bool = False  # the owner restricted this camera: process and record nothing new
    events: list[Event] = field(default_factory=list)  # every finished event, for reports
    motion_frames: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: deque[Transition] = field(default_factory=deque)  # tracker → reader thread
    _restrict_request: bool = False
    _shape: tuple[int, int] | None = None
    _needs_reset: bool = False
    _last_time: float = 0.0

    # -- reader thread ------------------------------------------------------------------------------

    def handle(self, ev: SourceEvent) -> DetectFrame | None:
        """Route one source event; returns the frame when it needs detection."""
        self._apply_pending()
        if self.restricted and isinstance(ev, (MediaPacket, DetectFrame)):
            return None
        if isinstance(ev, MediaPacket):
            if self.recorder is not None:
                self.recorder.on_packet(ev)
            return None
        if isinstance(ev, DetectFrame):
            return ev
        if isinstance(ev, Connected):
            self._needs_reset = True  # a new connection may show a different scene
            if self.recorder is not None:
                self.recorder.set_streams(ev.streams)
        elif isinstance(ev, Disconnected):
            self._finish(ev.time)
            if self.recorder is not None:
                self.recorder.set_streams({})  # the streams die with the connection: no clip may use them
        return None

    def finish(self) -> None:
        """End open events and clips (end of source, shutdown)."""
        self._apply_pending()
        self._finish(self._last_time)

    def _apply_pending(self) -> None:
        if self._restrict_request != self.restricted:
            self._set_restricted(self._restrict_request)
        while self._pending:
            self._apply(self._pending.popleft())

    def _set_restricted(self, restricted: bool) -> None:
        log.warning("%s: processing %s by the owner", self.name, "restricted" if restricted else "resumed")
        if restricted:  # the open clip was recorded before the restriction: finish it
            self._finish(self._last_time)
        self.restricted = restricted

    def _finish(self, t: float) -> None:
        with self._lock:  # queued transitions first, then the tracker's own end, in one go
            transitions = [*self._pending, *self.tracker.flush(max(t, self._last_time))]
            self._pending.clear()
        for tr in transitions:
            self._apply(tr)
        if self.recorder is not None:
            self.recorder.close()

    def _apply(self, tr: Transition) -> None:
        ev = tr.event
        clip_event = ClipEvent(label=ev.label, score=ev.score, start=ev.start, end=ev.end)
        if tr.kind == "start":
            log.info("%s: %s started at %.2f s (score %.3f)", self.name, ev.label, ev.start, ev.score)
            if self.recorder is not None and self.can_record():
                self.recorder.start(clip_event)
            elif self.recorder is not None:
                log.warning("%s: not recording this event: the spool is full", self.name)
        else:
            log.info("%s: %s ended at %.2f s", self.name, ev.label, ev.end)
            self.events.append(ev)
            if self.recorder is not None:
                self.recorder.update(clip_event)
                self.recorder.stop(ev.end)
        if self.on_transition is not None:
            self.on_transition(tr)

    # -- other threads ------------------------------------------------------------------------------

    def request_restricted(self, restricted: bool) -> None:
        """Ask for restriction (control thread); the reader thread carries it out."""
        self._restrict_request = restricted

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
        """Detect thread: run the tracker, queue its transitions for the reader thread."""
        with self._lock:
            self._last_time = max(self._last_time, result.time)
            self.motion_frames += int(result.motion)
            self._pending.extend(self.tracker.update(result.time, result.motion, result.score))


def detect_batch(detector: MotionDetector, items: Sequence[tuple[CameraPipeline, DetectFrame]]) -> None:
    """One detector call for frames of many cameras; results go back to their pipelines."""
    for pipe, frame in items:
        pipe.prepare(detector, frame)
    results = detector.detect([(pipe.name, f.time, f.image) for pipe, f in items])
    for (pipe, _), result in zip(items, results, strict=True):
        pipe.on_motion(result)
