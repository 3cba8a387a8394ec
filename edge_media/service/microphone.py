"""A microphone as an event source: capture thread → windows → shared audio model → events.

A microphone paired with a camera hands its events to that camera's pipeline (times moved onto the
camera's clock through the wall clock), so the camera's clip — with its video pre-roll — records
them. An unpaired microphone records audio-only clips with its own :class:`AudioClipRecorder`,
driven by its own :class:`ClipDecider` — the same clip decisions as a camera's, the same spool
quota gate (``can_record``) and the same owner restriction: a restricted microphone's audio is read
from the device and dropped unheard; events it heard before are ended, so an open clip finishes.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from recorder import AudioClipRecorder

from ..audio import AudioBlock, AudioEventLogic, MicUnavailable, Window
from ..events import ClipDecider, ClipSettings, Transition
from .camera import AudioChain, AudioWindows, CameraPipeline
from .recording import drive

log = logging.getLogger(__name__)

RETRY_S = 60.0  # a missing device is retried this often (USB microphones get plugged in later)


class BlockSource(Protocol):
    start_wall: float | None

    def start(self) -> None: ...
    def read(self, timeout: float | None = None) -> AudioBlock | None: ...
    def stop(self) -> None: ...


class MicWorker:
    def __init__(self, name: str, source: BlockSource, chain: AudioChain, submit: Callable[[AudioWindows], None],
                 *, paired: CameraPipeline | None = None, recorder: AudioClipRecorder | None = None,
                 stop_event: threading.Event | None = None, clips: ClipSettings | None = None,
                 can_record: Callable[[], bool] = lambda: True,
                 on_transition: Callable[[Transition], None] | None = None,
                 on_state: Callable[[str, str | None], None] | None = None) -> None:
        self.name, self.source, self.chain, self.submit = name, source, chain, submit
        self.paired, self.recorder, self.can_record = paired, recorder, can_record
        self.on_transition, self.on_state = on_transition, on_state  # the hub's notices (must not block)
        pre_roll = recorder.pre_roll_s if recorder is not None else 0.0
        self.decider = ClipDecider(clips or ClipSettings(pre_roll_s=pre_roll))
        self._who = f"microphone {name}"
        self.stop_event = stop_event or threading.Event()
        self._pending: deque[Transition] = deque()
        self._offsets: dict[tuple[str, float], float] = {}  # open paired events -> mic-to-camera offset
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.blocks = 0
        self.restricted = False  # carried out by the capture thread
        self._restrict_request = False  # asked by the control thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"mic-{self.name}", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request_restricted(self, restricted: bool) -> None:
        """Ask for restriction (control thread); the capture thread carries it out before its next block."""
        self._restrict_request = restricted

    # -- capture thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.source.start()
            except MicUnavailable as exc:
                log.error("microphone %s: %s (retrying every %.0f s; the rest of the service runs)",
                          self.name, exc, RETRY_S)
                self._tell_state("retrying", str(exc))
                self.stop_event.wait(RETRY_S)
                continue
            self._tell_state("connected", None)
            try:
                self._capture()
            finally:
                self.source.stop()
                self._finish()
                self._tell_state("ended", None)
            return

    def wall_of(self, t: float) -> float:
        """Wall-clock time of this microphone's time ``t`` (now, before the device has started)."""
        start = self.source.start_wall
        return time.time() if start is None else start + t

    def _tell_state(self, state: str, problem: str | None) -> None:
        if self.on_state is not None:
            self.on_state(state, problem)

    def _capture(self) -> None:
        while not self.stop_event.is_set():
            block = self.source.read(timeout=0.5)
            if self._restrict_request != self.restricted:
                self._set_restricted(self._restrict_request)
            self._apply_pending()
            if block is None:
                if getattr(self.source, "ended", False):
                    return
                continue
            self.blocks += 1
            if self.restricted:
                continue  # still read, so the device's buffer never replays it later; never heard
            wall = self.wall_of(block.time)
            if self.recorder is not None:
                drive(self._who, self.recorder, self.decider, self.decider.tick(block.time))
                self.recorder.push(block.samples, block.time, wall)
            windows = self.chain.windower.push(block.samples, block.time)
            if windows:
                self.submit(AudioWindows(self, windows))

    def _apply_pending(self) -> None:
        with self._lock:
            transitions, self._pending = list(self._pending), deque()
        for tr in transitions:
            ev = tr.event
            log.info("microphone %s: %s %s at %.2f s", self.name, ev.label, tr.kind,
                     ev.start if tr.kind == "start" else ev.until)
        if self.on_transition is not None:
            for tr in transitions:
                self.on_transition(tr)
        if transitions and self.recorder is not None:
            # The decider asks the quota only when a clip would open (see ClipDecider.feed).
            decisions = self.decider.feed(transitions, can_record=self.can_record)
            drive(self._who, self.recorder, self.decider, decisions)

    def _set_restricted(self, restricted: bool) -> None:
        log.warning("microphone %s: processing %s by the owner", self.name, "restricted" if restricted else "resumed")
        self.decider.restricted = restricted  # first: an event still queued opens no clip
        if restricted:  # events heard before the restriction end now, and so does their clip
            self._finish()
        else:
            self.chain.windower.reset()  # no window may span the unheard gap
        self.restricted = restricted

    def _finish(self) -> None:
        self._apply_pending()
        t = self.chain.windower.next_time or 0.0
        with self._lock:
            self._route(self.chain.logic.flush(t))
        self._apply_pending()
        if self.recorder is not None:
            drive(self._who, self.recorder, self.decider, self.decider.close(t))

    # -- audio thread --------------------------------------------------------------------------------

    def on_audio(self, windows: Sequence[Window], scores: Sequence[np.ndarray | None]) -> None:
        with self._lock:
            if self._restrict_request:  # windows scored after the restriction was asked are not heard
                return
            self._route([tr for w, s in zip(windows, scores, strict=True)
                         for tr in self.chain.logic.update(w.time, s, w.samples)])

    def audio_logic(self) -> AudioEventLogic:
        return self.chain.logic

    def adopt_audio_logic(self, fresh: AudioEventLogic) -> None:
        """Audio thread, between two batches: a new model's logic takes over this microphone's open events."""
        with self._lock:
            self._route(self.chain.logic.adopt(fresh))

    def _route(self, transitions: list[Transition]) -> None:
        """Called with ``_lock`` held: a restriction's flush and the audio thread's events stay in order."""
        if not transitions:
            return
        if self.paired is None:
            self._pending.extend(transitions)
            return
        moved = [self._on_camera_clock(tr) for tr in transitions]
        self.paired.queue([tr for tr in moved if tr is not None])

    def _on_camera_clock(self, tr: Transition) -> Transition | None:
        """The same event in the paired camera's stream time (both clocks meet at the wall clock)."""
        assert self.paired is not None
        key = (tr.event.label, tr.event.start)
        # The clock offset is taken once per event, so its start and end land on the same camera time.
        offset = self._offsets.pop(key, None) if tr.kind == "end" else self._clock_offset()
        if tr.kind == "start" and offset is not None:
            self._offsets[key] = offset
        if offset is None:
            log.warning("microphone %s: %s heard before camera %s has video; not recorded",
                        self.name, tr.event.label, self.paired.name)
            return None
        ev = tr.event
        moved = dataclasses.replace(ev, start=ev.start + offset, last_seen=ev.last_seen + offset,
                                    end=None if ev.end is None else ev.end + offset)
        return Transition(tr.kind, moved)

    def _clock_offset(self) -> float | None:
        wall0 = self.source.start_wall
        assert self.paired is not None
        return None if wall0 is None else self.paired.stream_time_of(wall0)
