"""Per-camera recording state machine: pre-roll ring → clip writer → spool.

*When* a clip starts, is cut and ends is decided upstream (``edge_media.events.clips``); this class
carries it out at packet level: a clip opens at a keyframe of the pre-roll ring, ends at the first
packet at or after its end time, and a cut closes it at a keyframe that also opens its continuation.

Single-threaded: the pipeline serialises calls. Recording failures (disk full, muxer errors) are
logged and swallowed — a broken clip must never stop the camera's detection pipeline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import av

from recorder.events import Event
from recorder.packets import MediaPacket
from recorder.ring import PreRollRing
from recorder.sidecar import ClipSidecar, new_clip_id
from recorder.spool import ClipMeta, Spool
from recorder.writer import ClipWriteError, ClipWriter

log = logging.getLogger(__name__)

OnClip = Callable[[Path, ClipSidecar], None]


class CameraRecorder:
    def __init__(self, camera: str, spool: Spool, *, pre_roll_s: float, ring_seconds: float, ring_max_bytes: int,
                 model_versions: Mapping[str, str], on_clip: OnClip) -> None:
        if ring_seconds < pre_roll_s:
            raise ValueError("ring_seconds must be at least pre_roll_s")
        self.camera = camera
        self.spool = spool
        self.pre_roll_s = pre_roll_s
        self.model_versions = dict(model_versions)
        self.on_clip = on_clip
        self.ring = PreRollRing(ring_seconds, ring_max_bytes)
        self._templates: dict[int, av.stream.Stream] = {}
        self._writer: ClipWriter | None = None
        self._clip_id = ""
        self._events: dict[tuple[str, float], Event] = {}
        self._pending_end: float | None = None
        self._pending_cut: tuple[float, tuple[Event, ...]] | None = None  # (at, events carried over)
        self._first: float | None = None  # stream time of the open clip's first keyframe
        self._last_time = float("-inf")

    @property
    def recording(self) -> bool:
        return self._writer is not None

    @property
    def clip_id(self) -> str | None:
        return self._clip_id if self._writer is not None else None

    def set_streams(self, templates: Mapping[int, av.stream.Stream]) -> None:
        """A (re)connection: timestamps restart, so no clip or pre-roll may span it."""
        self.close()
        self.ring.clear()
        self._templates = dict(templates)
        self._last_time = float("-inf")

    def on_packet(self, mp: MediaPacket) -> None:
        self.ring.push(mp)
        self._last_time = max(self._last_time, mp.time)
        if self._writer is None:
            return
        ending = self._pending_end is not None and mp.time >= self._pending_end
        if self._pending_cut is not None and mp.is_video and mp.is_keyframe and mp.time >= self._pending_cut[0] \
                and not ending:
            self._continue(mp)
        else:
            self._write(mp)
        if ending:
            self._finish()

    def start(self, at: float, events: Sequence[Event]) -> float | None:
        """Open a clip at the newest keyframe at or before ``at`` (the pre-roll) holding ``events``;
        returns the stream time it begins at (None until a keyframe arrives, or on failure)."""
        if self._writer is not None:
            # A new event during a clip extends it rather than cutting a second, overlapping clip.
            self._events.update((e.key, e) for e in events)
            self._pending_end = None
            return self._first
        if not self._templates:
            log.warning("camera %s: event %s before any stream is known; no clip", self.camera,
                        ", ".join(e.label for e in events))
            return None
        backlog = self.ring.packets_from(at)
        if not self._open(backlog[0].wall if backlog else time.time(), events):
            return None
        for mp in backlog:
            if self._writer is None:
                break  # a write failed and ended the clip
            self._write(mp)
        return self._first

    def update(self, event: Event) -> None:
        """Record the event (joined, or its new score/end) in the open clip."""
        if self._writer is not None:
            self._events[event.key] = event

    def cut(self, at: float, events: Sequence[Event]) -> None:
        """Close the clip at the first keyframe at or after ``at`` and continue from that keyframe
        (no pre-roll, so the clips neither overlap nor leave a gap) with ``events``."""
        if self._writer is not None and self._pending_cut is None:
            self._pending_cut = (at, tuple(events))

    def stop(self, end_time: float) -> None:
        """Close the clip once a packet at or after ``end_time`` has been written."""
        if self._writer is None:
            return
        self._pending_end = end_time
        if self._last_time >= end_time:
            self._finish()

    def close(self) -> None:
        """Finish any open clip now (shutdown, discontinuity)."""
        if self._writer is not None:
            self._finish()

    def _open(self, first_wall: float, events: Sequence[Event]) -> bool:
        self._clip_id = new_clip_id(first_wall)
        try:
            self._writer = ClipWriter(self.spool.tmp_path(self._clip_id), self._templates)
        except (av.FFmpegError, OSError, ValueError) as exc:
            log.error("camera %s: cannot open clip %s: %s", self.camera, self._clip_id, exc)
            return False
        self._events = {e.key: e for e in events}
        self._pending_end, self._pending_cut, self._first = None, None, None
        return True

    def _continue(self, key: MediaPacket) -> None:
        """Cut at ``key`` (a keyframe): finish the clip, open its continuation with that keyframe."""
        assert self._pending_cut is not None
        # The recorder's own record of an event is the newest (updates may follow the decision).
        known = {**{e.key: e for e in self._pending_cut[1]}, **self._events}
        carried = [e for e in known.values() if e.end is None or e.end > key.time]
        pending_end = self._pending_end
        self._finish()
        if self._open(key.wall, carried):
            self._pending_end = pending_end
            self._write(key)

    def _write(self, mp: MediaPacket) -> None:
        writer = self._writer
        assert writer is not None
        was_started = writer.started
        try:
            writer.write(mp)
            if not was_started and writer.started:
                # Recovery needs the camera and the clip's real times, which the file does not carry.
                self._first = mp.time
                meta = ClipMeta(camera=self.camera, model_versions=self.model_versions,
                                wall_start=mp.wall, stream_start=mp.time)
                self.spool.write_meta(self._clip_id, meta)
        except (ClipWriteError, OSError) as exc:
            log.error("camera %s: writing clip %s failed: %s; closing it early", self.camera, self._clip_id, exc)
            self._finish()

    def _finish(self) -> None:
        writer, clip_id = self._writer, self._clip_id
        events = sorted(self._events.values(), key=lambda e: e.start)
        self._writer, self._events, self._pending_end, self._pending_cut = None, {}, None, None
        if writer is None:
            return
        try:
            written = writer.close()
        except ClipWriteError as exc:
            # The fragments flushed so far stay in tmp/; Spool.recover salvages them at next start.
            log.error("camera %s: closing clip %s failed: %s; left for recovery", self.camera, clip_id, exc)
            return
        if written.packets == 0:
            log.info("camera %s: clip %s got no keyframe; dropped", self.camera, clip_id)
            self.spool.discard(clip_id)
            return
        sidecar = ClipSidecar.for_clip(written, clip_id=clip_id, camera=self.camera, events=events,
                                       model_versions=self.model_versions)
        try:
            path = self.spool.finalize(written, sidecar)
        except OSError as exc:
            log.error("camera %s: finalizing clip %s failed: %s; left for recovery", self.camera, clip_id, exc)
            return
        try:
            self.on_clip(path, sidecar)
        except Exception:  # the clip is safely in ready/; a consumer bug must not stop recording
            log.exception("camera %s: on_clip failed for clip %s", self.camera, clip_id)
