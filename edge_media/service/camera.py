"""One camera's wiring: source events → pre-roll recorder; detections → tracker → clip decider →
recorder.

Threading rule: **every PyAV call for a camera happens on its reader thread.** The detect thread
only runs the tracker (pure Python) and queues the transitions it produces; the reader thread feeds
them to the clip decider and carries its decisions out on the recorder before its next packet (the
decider also sees every packet's time, so a ``max_clip_s`` cut is exact however far detection lags).
Opening a clip copies codec parameters from the input stream, and doing that on another thread
while the reader thread decodes (PyAV releases the GIL) crashed the process in a stress run. The
same goes for restriction requests from the control thread. Nothing here decodes or touches pixels.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from av.audio.stream import AudioStream

from recorder import CameraRecorder
from recorder.packets import MediaPacket

from ..audio import (
    AudioEventLogic,
    AudioEventModel,
    AudioWindower,
    CameraAudioDecoder,
    Window,
    score_windows,
)
from ..detect import MotionDetector, MotionResult, MotionSettings
from ..events import ClipDecider, ClipSettings, Decision, Event, EventTracker, Transition
from ..sources import Connected, DetectFrame, Disconnected, SourceEvent
from .recording import drive

log = logging.getLogger(__name__)


@dataclass
class AudioChain:
    """One audio source's windows and event logic (the model is shared by every source)."""

    windower: AudioWindower
    logic: AudioEventLogic
    decoder: CameraAudioDecoder | None = None  # camera tracks: rebuilt on every connection


class AudioSink(Protocol):
    """A camera or microphone that hears audio events: the audio thread hands it each batch's scores."""

    name: str

    def on_audio(self, windows: Sequence[Window], scores: Sequence[np.ndarray | None]) -> None: ...
    def audio_logic(self) -> AudioEventLogic: ...
    def adopt_audio_logic(self, fresh: AudioEventLogic) -> None: ...
    def wall_of(self, t: float) -> float: ...


@dataclass(slots=True)
class AudioWindows:
    sink: AudioSink
    windows: list[Window]


@dataclass
class CameraPipeline:
    name: str
    tracker: EventTracker
    motion: MotionSettings
    recorder: CameraRecorder | None = None  # None: analyse only, record nothing
    on_transition: Callable[[Transition], None] | None = None
    can_record: Callable[[], bool] = lambda: True  # spool quota (stop-recording policy)
    restricted: bool = False  # the owner restricted this camera: process and record nothing new
    audio: AudioChain | None = None  # audio events on the camera's own audio track
    decider: ClipDecider | None = None  # default: the recorder's pre-roll, the tracker's max_clip_s
    # Detection runs on its own substream: only that stream's (re)connections reset the background, not the
    # record stream's, which may reconnect mid-motion (the moving object would be learned as background).
    detect_substream: bool = False
    events: list[Event] = field(default_factory=list)  # every finished event, for reports
    motion_frames: int = 0
    detect_seconds: float = 0.0  # this camera's share of the motion model's time (detect thread only)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: deque[Transition] = field(default_factory=deque)  # tracker → reader thread
    _restrict_request: bool = False
    _shape: tuple[int, int] | None = None
    _needs_reset: bool = False
    # With a detect substream two reader threads call handle(); the decider and recorder take one at a time.
    _drive_lock: threading.Lock = field(default_factory=threading.Lock)
    _record_up: bool = False  # the record stream is connected (its thread calls handle with its packets)
    _last_time: float = 0.0  # stream time of the newest frame detection has seen
    _detected: threading.Condition = field(default_factory=threading.Condition)  # _last_time moved
    _clock: tuple[float, float] | None = None  # (stream time, wall) of the newest packet

    def __post_init__(self) -> None:
        if self.decider is None:
            pre_roll = self.recorder.pre_roll_s if self.recorder is not None else 0.0
            self.decider = ClipDecider(ClipSettings(pre_roll_s=pre_roll, max_clip_s=self.tracker.s.max_clip_s))

    # -- reader thread ------------------------------------------------------------------------------

    def handle(self, ev: SourceEvent) -> DetectFrame | AudioWindows | None:
        """Route one source event; returns what needs a model: a frame, or audio windows."""
        with self._drive_lock:
            return self._handle(ev)

    def _handle(self, ev: SourceEvent) -> DetectFrame | AudioWindows | None:
        if not (self.detect_substream and isinstance(ev, DetectFrame) and self._record_up):
            # The record stream's thread drives the recorder (PyAV) while it is connected; while it is down
            # the recorder holds no streams, and the substream's thread applies events so notices still go out.
            self._apply_pending()
        if self.restricted and isinstance(ev, (MediaPacket, DetectFrame)):
            return None
        if isinstance(ev, MediaPacket):
            self._clock = (ev.time, ev.wall)
            # Decode audio before the recorder sees the packet: muxing rebases its timestamps.
            windows = self._audio_windows(ev) if not ev.is_video else None
            if self.recorder is not None:
                self._drive(self._decider.tick(ev.time))
                self.recorder.on_packet(ev)
            return windows
        if isinstance(ev, DetectFrame):
            return ev
        if isinstance(ev, Connected):
            self._record_up = True
            if not self.detect_substream:
                self._needs_reset = True  # a new connection may show a different scene
            if self.recorder is not None:
                self.recorder.set_streams(ev.streams)
            if self.audio is not None:
                track = next((st for st in ev.streams.values() if isinstance(st, AudioStream)), None)
                self.audio.decoder = CameraAudioDecoder(track, name=self.name) if track is not None else None
                self.audio.windower.reset()
        elif isinstance(ev, Disconnected):
            self._record_up = False
            self._finish(ev.time)
            if self.recorder is not None:
                self.recorder.set_streams({})  # the streams die with the connection: no clip may use them
            if self.audio is not None:
                self.audio.decoder = None
        return None

    def _audio_windows(self, mp: MediaPacket) -> AudioWindows | None:
        if self.audio is None or self.audio.decoder is None:
            return None
        windows: list[Window] = []
        for block in self.audio.decoder.decode(mp.packet, mp.time):
            windows += self.audio.windower.push(block.samples, block.time)
        return AudioWindows(self, windows) if windows else None

    def audio_tail(self) -> AudioWindows | None:
        """End of a file (not a live stream): the camera track's last audio, drained from the decoder
        and windowed over silence (``AudioWindower.end``), so a sound in its last second is heard."""
        if self.audio is None or self.audio.decoder is None:
            return None
        windows = [w for b in self.audio.decoder.flush() for w in self.audio.windower.push(b.samples, b.time)]
        windows += self.audio.windower.end()
        return AudioWindows(self, windows) if windows else None

    def wall_of(self, t: float) -> float:
        """Wall-clock time of this camera's stream time ``t`` (now, before the first packet)."""
        if self._clock is None:
            return time.time()
        return self._clock[1] + (t - self._clock[0])

    def stream_time_of(self, wall: float) -> float | None:
        """This camera's stream time at wall-clock ``wall`` (to place a paired microphone's events)."""
        if self._clock is None:
            return None
        return self._clock[0] + (wall - self._clock[1])

    def finish(self) -> None:
        """End open events and clips (end of source, shutdown)."""
        with self._drive_lock:
            self._apply_pending()
            self._finish(self._last_time)

    def detect_connected(self) -> None:
        """The detect substream (re)connected: a new connection may show a different scene."""
        self._needs_reset = True

    @property
    def _decider(self) -> ClipDecider:
        assert self.decider is not None
        return self.decider

    def _apply_pending(self) -> None:
        if self._restrict_request != self.restricted:
            self._set_restricted(self._restrict_request)
        if self._pending:
            with self._lock:  # one batch: an event split in two arrives as one end + start pair
                transitions = list(self._pending)
                self._pending.clear()
            self._apply(transitions)

    def _set_restricted(self, restricted: bool) -> None:
        log.warning("%s: processing %s by the owner", self.name, "restricted" if restricted else "resumed")
        self._decider.restricted = restricted  # first: an event still queued opens no clip
        if restricted:  # the open clip was recorded before the restriction: finish it
            self._finish(self._last_time)
        else:
            self._needs_reset = True  # the scene went unwatched: learn the background again
        self.restricted = restricted

    def _finish(self, t: float) -> None:
        with self._lock:  # queued transitions first, then the trackers' own ends, in one go
            end = max(t, self._last_time)
            audio_ends = self.audio.logic.flush(end) if self.audio is not None else []
            transitions = [*self._pending, *self.tracker.flush(end), *audio_ends]
            self._pending.clear()
        self._apply(transitions)
        self._drive(self._decider.close(end))

    def _apply(self, transitions: list[Transition]) -> None:
        """Report the transitions, then let the clip decider say what the recorder does."""
        for tr in transitions:
            ev = tr.event
            if tr.kind == "start":
                log.info("%s: %s started at %.2f s (score %.3f)", self.name, ev.label, ev.start, ev.score)
            else:
                log.info("%s: %s ended at %.2f s", self.name, ev.label, ev.until)
                self.events.append(ev)
        self._drive(self._decider.feed(transitions, can_record=self.can_record))
        if self.on_transition is not None:
            for tr in transitions:
                self.on_transition(tr)

    def _drive(self, decisions: list[Decision]) -> None:
        if decisions and self.recorder is not None:
            drive(self.name, self.recorder, self._decider, decisions)

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

    def queue(self, transitions: Sequence[Transition]) -> None:
        """Transitions from another thread (e.g. a paired microphone), applied by the reader thread."""
        with self._lock:
            self._pending.extend(transitions)

    def on_audio(self, windows: Sequence[Window], scores: Sequence[np.ndarray | None]) -> None:
        """Audio thread: per window (scores or None when silent) through the event logic, with the
        window's audio for the logic's pattern verifiers."""
        assert self.audio is not None
        with self._lock:
            for w, s in zip(windows, scores, strict=True):
                self._pending.extend(self.audio.logic.update(w.time, s, w.samples))

    def audio_logic(self) -> AudioEventLogic:
        assert self.audio is not None
        return self.audio.logic

    def adopt_audio_logic(self, fresh: AudioEventLogic) -> None:
        """Audio thread, between two batches: a new model's logic takes over this camera's open events."""
        assert self.audio is not None
        with self._lock:
            self._pending.extend(self.audio.logic.adopt(fresh))

    def on_motion(self, result: MotionResult) -> None:
        """Detect thread: run the tracker, queue its transitions for the reader thread."""
        with self._lock:
            self._last_time = max(self._last_time, result.time)
            self.motion_frames += int(result.motion)
            self._pending.extend(self.tracker.update(result.time, result.motion, result.score))
        with self._detected:
            self._detected.notify_all()

    def wait_for_detection(self, until: float, timeout_s: float = 5.0) -> None:
        """Reader thread of a file source: wait until detection has seen stream time ``until`` (bounded: a
        failed batch never reports back). Keeps a file from racing further ahead of detection than the
        pre-roll ring reaches back, however starved the detect thread is."""
        with self._detected:
            self._detected.wait_for(lambda: self._last_time >= until, timeout=timeout_s)


def detect_batch(detector: MotionDetector, items: Sequence[tuple[CameraPipeline, DetectFrame]]
                 ) -> list[MotionResult]:
    """One detector call for frames of many cameras; results go back to their pipelines."""
    for pipe, frame in items:
        pipe.prepare(detector, frame)
    started = time.perf_counter()
    results = detector.detect([(pipe.name, f.time, f.image) for pipe, f in items])
    share = (time.perf_counter() - started) / max(len(items), 1)  # frames of one batch cost alike
    for (pipe, _), result in zip(items, results, strict=True):
        pipe.detect_seconds += share
        pipe.on_motion(result)
    return results


def audio_batch(model: AudioEventModel, items: Sequence[AudioWindows]
                ) -> list[list[tuple[float, np.ndarray | None]]]:
    """One model call for the windows of every source (through the one scoring path, so silent
    windows never reach the model). Returns each item's (window time, scores or None) as handed
    to its sink."""
    scores = iter(score_windows(model, [w for item in items for w in item.windows]))
    out = []
    for item in items:
        own = [next(scores) for _ in item.windows]
        item.sink.on_audio(item.windows, own)
        out.append([(w.time, s) for w, s in zip(item.windows, own, strict=True)])
    return out
