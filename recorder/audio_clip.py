"""Audio-only clips for microphones without a camera: a PCM pre-roll ring, AAC in fragmented MP4.

A microphone delivers raw samples, not packets, so unlike the camera recorder this one encodes —
but only while a clip is open (an event was heard), never in the idle path. Same lifecycle as
:class:`recorder.CameraRecorder`: ``start`` (from ``at``, the pre-roll), ``update``, ``cut``,
``stop``, ``close``; finished clips go through the spool with a sidecar like any other clip.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.audio.stream import AudioStream

from .events import Event
from .sidecar import ClipSidecar, new_clip_id
from .spool import ClipMeta, Spool
from .writer import FRAGMENTED_MP4, WrittenClip, fsync_and_hash

log = logging.getLogger(__name__)

# frag_keyframe cuts fragments at video keyframes only: an audio-only clip needs a duration, or it is
# one fragment held in memory until close, and a crash loses all of it.
AUDIO_FRAGMENTS = {**FRAGMENTED_MP4, "frag_duration": "1000000"}  # µs


class AudioClipRecorder:
    def __init__(self, source: str, spool: Spool, *, pre_roll_s: float, sample_rate: int = 16000,
                 model_versions: Mapping[str, str], on_clip: Callable[[Path, ClipSidecar], None],
                 bitrate: int = 48000, ring_slack_s: float = 6.0) -> None:
        self.source, self.spool, self.pre_roll_s, self.rate = source, spool, pre_roll_s, sample_rate
        self.model_versions, self.on_clip, self.bitrate = dict(model_versions), on_clip, bitrate
        # The ring holds more than the pre-roll: the event is confirmed a little after its onset.
        self.ring_seconds = pre_roll_s + ring_slack_s
        self._ring: deque[tuple[float, float, np.ndarray]] = deque()  # (time, wall, samples)
        self._out: av.container.OutputContainer | None = None
        self._stream: AudioStream | None = None
        self._events: dict[tuple[str, float], Event] = {}
        self._pending_end: float | None = None
        self._pending_cut: tuple[float, tuple[Event, ...]] | None = None  # (at, events carried over)
        self._clip_id = ""
        self._first: tuple[float, float] | None = None  # (time, wall) of the clip's first sample
        self._written = 0  # samples encoded into the open clip

    @property
    def recording(self) -> bool:
        return self._out is not None

    def push(self, samples: np.ndarray, time: float, wall: float) -> None:
        """A block of mono float32 samples at stream ``time`` (its first sample)."""
        self._ring.append((time, wall, samples))
        while self._ring and self._ring[0][0] + len(self._ring[0][2]) / self.rate < time - self.ring_seconds:
            self._ring.popleft()
        if self._out is None:
            return
        ending = self._pending_end is not None and time + len(samples) / self.rate >= self._pending_end
        if self._pending_cut is not None and time >= self._pending_cut[0] and not ending:
            self._continue(wall)
        if self._out is not None:
            self._encode(samples, time, wall)
        if ending:
            self._finish()

    def start(self, at: float, events: Sequence[Event]) -> float | None:
        """Open a clip from ``at`` (the pre-roll, from the ring) holding ``events``, or extend the
        open one; returns the stream time of its first sample (None if it could not open)."""
        self._events.update((e.key, e) for e in events)
        self._pending_end = None
        if self._out is not None:
            self._journal()
            return self._first[0] if self._first else None
        if not self._open(self._ring[0][1] if self._ring else 0.0, events):
            return None
        for t, wall, block in list(self._ring):
            if t + len(block) / self.rate > at:
                self._encode(block, t, wall)
        return self._first[0] if self._first else None

    def update(self, event: Event) -> None:
        if self._out is not None:
            self._events[event.key] = event
            self._journal()

    def cut(self, at: float, events: Sequence[Event]) -> None:
        """Close the clip at the first block at or after ``at``; it opens the continuation."""
        if self._out is not None and self._pending_cut is None:
            self._pending_cut = (at, tuple(events))

    def _open(self, first_wall: float, events: Sequence[Event]) -> bool:
        self._clip_id = new_clip_id(first_wall)
        path = self.spool.tmp_path(self._clip_id)
        try:
            self._out = out = av.open(str(path), "w", format="mp4", options=AUDIO_FRAGMENTS)
            self._stream = stream = out.add_stream("aac", rate=self.rate)
            stream.layout, stream.bit_rate = "mono", self.bitrate
        except (av.FFmpegError, OSError) as exc:
            log.error("microphone %s: cannot open clip %s: %s", self.source, self._clip_id, exc)
            self._out, self._events = None, {}
            return False
        self._events = {e.key: e for e in events}
        self._first, self._written, self._pending_cut = None, 0, None
        return True

    def _continue(self, wall: float) -> None:
        assert self._pending_cut is not None
        at = self._pending_cut[0]
        known = {**{e.key: e for e in self._pending_cut[1]}, **self._events}
        carried = [e for e in known.values() if e.end is None or e.end > at]
        pending_end = self._pending_end
        self._finish()
        if self._open(wall, carried):
            self._pending_end = pending_end

    def _journal(self) -> None:
        """The open clip's meta and events beside it: what a recovery after a crash needs."""
        if self._first is None:
            return
        events = sorted(self._events.values(), key=lambda e: e.start)
        meta = ClipMeta(camera=self.source, model_versions=self.model_versions, wall_start=self._first[1],
                        stream_start=self._first[0], events=events)
        try:
            self.spool.write_meta(self._clip_id, meta)
        except OSError as exc:
            log.error("microphone %s: journaling clip %s failed: %s", self.source, self._clip_id, exc)

    def stop(self, end_time: float) -> None:
        if self._out is None:
            return
        self._pending_end = end_time
        last = self._ring[-1] if self._ring else None
        if last is not None and last[0] + len(last[2]) / self.rate >= end_time:
            self._finish()

    def close(self) -> None:
        if self._out is not None:
            self._finish()

    def _encode(self, samples: np.ndarray, time: float, wall: float) -> None:
        if self._first is None:
            self._first = (time, wall)
            self._journal()
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32).reshape(1, -1),
                                           format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = self.rate, self._written, Fraction(1, self.rate)
        self._written += len(samples)
        assert self._stream is not None and self._out is not None
        try:
            for pkt in self._stream.encode(frame):
                self._out.mux(pkt)
        except (av.FFmpegError, OSError) as exc:
            log.error("microphone %s: writing clip %s failed: %s; closing it early", self.source, self._clip_id, exc)
            self._finish()

    def _finish(self) -> None:
        out, events = self._out, sorted(self._events.values(), key=lambda e: e.start)
        self._out, self._events, self._pending_end, self._pending_cut = None, {}, None, None
        if out is None:
            return
        assert self._stream is not None
        try:
            for pkt in self._stream.encode(None):
                out.mux(pkt)
            out.close()
            size, digest = fsync_and_hash(self.spool.tmp_path(self._clip_id))
        except (av.FFmpegError, OSError) as exc:
            log.error("microphone %s: closing clip %s failed: %s; left for recovery", self.source, self._clip_id, exc)
            return
        t0, w0 = self._first or (0.0, 0.0)
        duration = self._written / self.rate
        written = WrittenClip(path=self.spool.tmp_path(self._clip_id), size_bytes=size, sha256=digest,
                              first_time=t0, last_time=t0 + duration, first_wall=w0, last_wall=w0 + duration,
                              duration_s=duration, video_codec="", audio_codec="aac", width=0, height=0,
                              packets=0)
        sidecar = ClipSidecar.for_clip(written, clip_id=self._clip_id, camera=self.source, events=events,
                                       model_versions=self.model_versions)
        try:
            path = self.spool.finalize(written, sidecar)
            self.on_clip(path, sidecar)
        except Exception:  # the clip is in ready/ (or tmp/ for recovery); never stop listening
            log.exception("microphone %s: finishing clip %s failed", self.source, self._clip_id)
