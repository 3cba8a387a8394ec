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
from recorder.formats import RecordingPlan, plan_recording
from recorder.packets import MediaPacket
from recorder.ring import PreRollRing
from recorder.sidecar import ClipSidecar, new_clip_id
from recorder.spool import ClipMeta, Spool
from recorder.writer import ClipWriteError, ClipWriter

log = logging.getLogger(__name__)

OnClip = Callable[[Path, ClipSidecar], None]
# Asked before each new fragment of an open clip with the bytes it may still add to the spool;
# False ends the clip there (spool quota). The default always says yes.
Room = Callable[[int], bool]
# Told when a clip that asked for room has ended: what it was granted is on disk now, or was never used.
Release = Callable[[], None]


class CameraRecorder:
    def __init__(self, camera: str, spool: Spool, *, pre_roll_s: float, ring_seconds: float, ring_max_bytes: int,
                 model_versions: Mapping[str, str], on_clip: OnClip, room: Room | None = None,
                 release: Release | None = None) -> None:
        if ring_seconds < pre_roll_s:
            raise ValueError("ring_seconds must be at least pre_roll_s")
        self.camera = camera
        self.spool = spool
        self.pre_roll_s = pre_roll_s
        self.model_versions = dict(model_versions)
        self.on_clip = on_clip
        self.room, self.release = room, release
        self.ring = PreRollRing(ring_seconds, ring_max_bytes)
        self._templates: dict[int, av.stream.Stream] = {}
        self._plan = RecordingPlan(None, ())
        self._said: set[str] = set()  # recording plans already logged: once, not per event or reconnect
        self._writer: ClipWriter | None = None
        self._clip_id = ""
        self._meta: ClipMeta | None = None  # journaled beside the open clip once it has a keyframe
        self._fragment_bytes = self._last_fragment_bytes = 0
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
        self._plan = plan_recording(templates) if templates else RecordingPlan(None, ())
        self._last_time = float("-inf")
        if templates:
            self._say_plan_once()

    def _say_plan_once(self) -> None:
        """Anything unusual about how this camera is recorded, once per camera (not per reconnect)."""
        plan = self._plan
        said = plan.note or (plan.format.muxer if plan.format and plan.format.muxer != "mp4" else "")
        if not said or said in self._said:
            return
        self._said.add(said)
        if not plan.recordable:
            log.error("camera %s cannot be recorded: %s; events are still detected", self.camera, plan.note)
        elif plan.note:
            log.warning("camera %s: %s", self.camera, plan.note)
        if plan.format is not None and plan.format.muxer != "mp4":
            log.info("camera %s: recording in %s (its codecs do not fit MP4)", self.camera, plan.format.muxer)

    @property
    def plan(self) -> RecordingPlan:
        """How the current connection is recorded (container, streams), or why it cannot be."""
        return self._plan

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
            self._journal()
            return self._first
        if not self._templates:
            log.warning("camera %s: event %s before any stream is known; no clip", self.camera,
                        ", ".join(e.label for e in events))
            return None
        if self._plan.format is None:
            return None  # said once, in set_streams
        backlog = self.ring.packets_from(at)
        if not self._room_for(backlog):
            return None
        if not self._open(backlog[0].wall if backlog else time.time(), events):
            self._release_room()
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
            self._journal()

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
        fmt = self._plan.format
        assert fmt is not None  # start() checks the plan
        self._clip_id = new_clip_id(first_wall)
        templates = {i: self._templates[i] for i in self._plan.streams}
        try:
            self._writer = ClipWriter(self.spool.tmp_path(self._clip_id, fmt.extension), templates, fmt)
        except (av.FFmpegError, OSError, ValueError) as exc:
            log.error("camera %s: cannot open clip %s: %s", self.camera, self._clip_id, exc)
            return False
        self._events = {e.key: e for e in events}
        self._meta, self._fragment_bytes, self._last_fragment_bytes = None, 0, 0
        self._pending_end, self._pending_cut, self._first = None, None, None
        return True

    def _continue(self, key: MediaPacket) -> None:
        """Cut at ``key`` (a keyframe): finish the clip, open its continuation with that keyframe."""
        assert self._pending_cut is not None
        # The recorder's own record of an event is the newest (updates may follow the decision).
        known = {**{e.key: e for e in self._pending_cut[1]}, **self._events}
        carried = [e for e in known.values() if e.end is None or e.end > key.time]
        pending_end = self._pending_end
        self._finish(continued=True)
        if self._open(key.wall, carried):
            self._pending_end = pending_end
            self._write(key)
        else:
            self._release_room()

    def _write(self, mp: MediaPacket) -> None:
        writer = self._writer
        assert writer is not None
        was_started = writer.started
        if was_started and mp.is_keyframe and not self._has_room():
            self._finish()  # ends on a whole fragment, before the spool quota is crossed
            return
        try:
            if writer.write(mp):
                self._count_fragment(mp)
            if not was_started and writer.started:
                # Recovery needs the camera and the clip's real times, which the file does not carry.
                self._first = mp.time
                self._meta = ClipMeta(camera=self.camera, model_versions=self.model_versions,
                                      wall_start=mp.wall, stream_start=mp.time)
                self._journal()
        except (ClipWriteError, OSError) as exc:
            log.error("camera %s: writing clip %s failed: %s; closing it early", self.camera, self._clip_id, exc)
            self._finish()

    def _count_fragment(self, mp: MediaPacket) -> None:
        if mp.is_keyframe:
            self._last_fragment_bytes, self._fragment_bytes = self._fragment_bytes, 0
        self._fragment_bytes += mp.size

    def _has_room(self) -> bool:
        # The fragment just completed is not on disk yet (it is flushed once this keyframe is muxed),
        # and the next one will be about as big as the last: ask for both.
        if self.room is None:
            return True
        if self.room(_with_overhead(self._fragment_bytes + max(self._fragment_bytes, self._last_fragment_bytes))):
            return True
        log.warning("camera %s: spool quota reached; clip %s ends here", self.camera, self._clip_id)
        return False

    def _room_for(self, backlog: list[MediaPacket]) -> bool:
        """Room for a new clip: its pre-roll plus one more GOP of the same average size."""
        if self.room is None or not backlog:
            return True
        nbytes = sum(mp.size for mp in backlog)
        gops = max(sum(mp.is_keyframe for mp in backlog), 1)
        if self.room(_with_overhead(nbytes + nbytes // gops)):
            return True
        log.warning("camera %s: spool quota reached; no clip for this event", self.camera)
        return False

    def _journal(self) -> None:
        """Write the open clip's events beside it, so a crash does not leave a recovered clip without them."""
        if self._meta is None:
            return  # no keyframe yet: nothing on disk to recover; the first keyframe journals them
        self._meta.events = sorted(self._events.values(), key=lambda e: e.start)
        try:
            self.spool.write_meta(self._clip_id, self._meta)
        except OSError as exc:
            log.error("camera %s: journaling clip %s failed: %s", self.camera, self._clip_id, exc)

    def _finish(self, *, continued: bool = False) -> None:
        """Close the open clip and hand it on. ``continued`` (a cut): the continuation keeps the spool room this
        clip was granted, as its first fragment is the one that room was asked for."""
        writer, clip_id = self._writer, self._clip_id
        events = sorted(self._events.values(), key=lambda e: e.start)
        self._writer, self._events, self._pending_end, self._pending_cut = None, {}, None, None
        self._meta = None
        if writer is None:
            return
        closed = self._close(writer, clip_id, events)
        if not continued:
            self._release_room()  # before on_clip: the quota, enforced once the clip is queued, counts it on disk
        if closed is None:
            return
        try:
            self.on_clip(*closed)
        except Exception:  # the clip is safely in ready/; a consumer bug must not stop recording
            log.exception("camera %s: on_clip failed for clip %s", self.camera, clip_id)

    def _close(self, writer: ClipWriter, clip_id: str, events: list[Event]) -> tuple[Path, ClipSidecar] | None:
        """Finalize the clip into ready/ with its sidecar; None when there is nothing (or nothing whole) to hand on."""
        try:
            written = writer.close()
        except ClipWriteError as exc:
            # The fragments flushed so far stay in tmp/; Spool.recover salvages them at next start.
            log.error("camera %s: closing clip %s failed: %s; left for recovery", self.camera, clip_id, exc)
            return None
        if written.packets == 0:
            log.info("camera %s: clip %s got no keyframe; dropped", self.camera, clip_id)
            self.spool.discard(clip_id)
            return None
        sidecar = ClipSidecar.for_clip(written, clip_id=clip_id, camera=self.camera, events=events,
                                       model_versions=self.model_versions)
        try:
            return self.spool.finalize(written, sidecar), sidecar
        except OSError as exc:
            log.error("camera %s: finalizing clip %s failed: %s; left for recovery", self.camera, clip_id, exc)
            return None

    def _release_room(self) -> None:
        if self.release is not None:
            self.release()


def _with_overhead(nbytes: int) -> int:
    """Payload bytes → spool bytes: container framing (moof/trun, Matroska blocks), sidecar, meta."""
    return nbytes + nbytes // 16 + 4096
