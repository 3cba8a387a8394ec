"""Clip writer: remux encoded packets into a fragmented MP4 (or Matroska) — no decode, no encode.

Fragmented MP4 (``frag_keyframe+empty_moov``) means every flushed fragment is playable on its own,
so a crash mid-clip leaves a file :meth:`recorder.spool.Spool.recover` can salvage. Each fragment is
written to the file as soon as it is complete (``flush_packets``) and fsynced every few seconds:
a kill loses at most the fragment being built, a power cut at most ``FSYNC_INTERVAL_S`` more.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.bitstream import BitStreamFilterContext

from recorder.errors import RecorderError
from recorder.formats import MP4, ClipFormat, format_for, plan_recording
from recorder.packets import MediaPacket

log = logging.getLogger(__name__)

FRAGMENTED_MP4 = dict(MP4.options)
FSYNC_INTERVAL_S = 2.0  # fsync at the first keyframe after this long: not per packet (SD cards are slow)
# No real gap between two packets of a track inside one clip is longer than a clip may be (max_clip_s <= 1 h): a
# longer leap, either way, is the camera's clock (a reset, a corrupt PES header), and the track is re-anchored to
# carry on one step after its last packet. Left alone, a leap past 2**31 ticks of the track's timescale (6.6 h at
# 90 kHz) made FFmpeg's MP4 muxer abort the whole hub (assertion next_dts <= 0x7fffffff in movenc.c).
MAX_DTS_LEAP_S = 3600.0
_MUXER_MAX_TICKS = 0x7FFFFFFF
_HASH_CHUNK = 1 << 20


class ClipWriteError(RecorderError):
    """The muxer or the file system refused the clip (disk full, bad timestamps, ...)."""


@dataclass(frozen=True, slots=True)
class WrittenClip:
    path: Path
    size_bytes: int
    sha256: str
    first_time: float  # stream seconds of the first keyframe
    last_time: float  # stream seconds of the last packet written
    first_wall: float  # epoch seconds
    last_wall: float
    duration_s: float
    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    packets: int
    container: str = MP4.muxer


@dataclass(slots=True)
class _Track:
    out: av.stream.Stream
    is_video: bool
    offset: int | None = None  # subtracted from the original pts/dts so the clip starts at 0
    last_dts: int | None = None
    step: int = 1  # the last dts step: a re-anchored packet follows its predecessor by this much
    adts: BitStreamFilterContext | None = None  # AAC as MPEG-TS carries it: headers stripped (see _is_adts)


class ClipWriter:
    """Writes one clip. ``templates`` maps input stream_index → input stream (codec parameters);
    ``fmt`` must hold every one of them (see :func:`recorder.formats.plan_recording`)."""

    def __init__(self, path: Path | str, templates: Mapping[int, av.stream.Stream], fmt: ClipFormat = MP4, *,
                 audio_only: bool = False) -> None:
        self.path = Path(path)
        self.format = fmt
        adts = {i for i, t in templates.items() if _is_adts(t)}
        options = dict(fmt.options)
        if adts and fmt.muxer == "mp4":  # the moov waits for the AAC config the filter takes from the first frame
            options["movflags"] += "+delay_moov"
        self._container = av.open(str(self.path), "w", format=fmt.muxer, options=options)
        self._tracks: dict[int, _Track] = {}
        self._sync_fd: int | None = None  # a second descriptor to fsync through (PyAV owns the writing one)
        self._last_sync = time.monotonic()
        try:
            for index, template in templates.items():
                out = self._container.add_stream_from_template(template)
                self._tracks[index] = _Track(out=out, is_video=template.type == "video", adts=BitStreamFilterContext(
                    "aac_adtstoasc", template) if index in adts else None)
        except Exception:
            self._discard()
            raise
        self._video_info = _codec_info(templates, "video")
        self._audio_info = _codec_info(templates, "audio")
        if self._video_info is None and (self._audio_info is None or not audio_only):
            self._discard()
            raise ValueError("a clip needs a video stream")
        self._start: float | None = None  # stream seconds of the first keyframe
        self._start_s = Fraction(0)  # the same instant as an exact rational (dts * time_base)
        self._first_wall = self._last_time = self._last_wall = self._end = 0.0
        self._packets = 0
        self._closed = False

    @property
    def started(self) -> bool:
        """True once the opening keyframe has been written."""
        return self._start is not None

    @property
    def packets(self) -> int:
        return self._packets

    def write(self, mp: MediaPacket) -> bool:
        """Remux one packet; returns False when it was skipped. Raises :class:`ClipWriteError`."""
        track = self._tracks.get(mp.stream_index)
        if track is None or mp.dts is None or self._closed:
            return False
        if self._start is None:
            if self._video_info is not None and not (track.is_video and mp.is_keyframe):
                return False  # a clip must open on a video keyframe (an audio-only one on any packet)
            self._begin(mp)
        offset = self._offset(track, mp)
        dts = mp.dts - offset
        if track.last_dts is not None and self._leaps(track, mp, dts):
            offset = self._reanchor(track, mp, dts)
            dts = mp.dts - offset
        if dts < 0 and not track.is_video:
            return False  # audio from before the clip's first keyframe
        if track.last_dts is not None and dts <= track.last_dts:
            # MP4 demands strictly increasing dts per track; a glitchy source must not kill the clip.
            log.debug("clip %s: dropping non-monotonic dts %s on stream %s", self.path.name, dts, mp.stream_index)
            return False
        self._mux(mp, track, dts, offset)
        if track.last_dts is not None:
            track.step = dts - track.last_dts
        track.last_dts = dts
        self._account(mp)
        if mp.is_keyframe:
            self._sync_now_and_then()
        return True

    def _sync_now_and_then(self) -> None:
        # A keyframe completes the previous fragment, which flush_packets has just handed to the OS;
        # fsync makes it survive a power cut too.
        now = time.monotonic()
        if now - self._last_sync < FSYNC_INTERVAL_S:
            return
        self._last_sync = now
        try:
            if self._sync_fd is None:
                self._sync_fd = os.open(self.path, os.O_RDONLY)
            os.fsync(self._sync_fd)
        except OSError as exc:
            raise ClipWriteError(f"syncing {self.path.name}: {exc}") from exc

    def _begin(self, key: MediaPacket) -> None:
        assert key.dts is not None  # write() skips packets without dts
        self._start = key.time
        self._first_wall = key.wall
        self._start_s = Fraction(key.dts) * key.time_base

    def _offset(self, track: _Track, mp: MediaPacket) -> int:
        # The clip-start instant (the first keyframe's dts) becomes 0 on every track, each in
        # its own input time base; fixed by the track's first packet.
        if track.offset is None:
            track.offset = round(self._start_s / mp.time_base)
        return track.offset

    @staticmethod
    def _leaps(track: _Track, mp: MediaPacket, dts: int) -> bool:
        """A step from the track's last packet that no clip can hold (see MAX_DTS_LEAP_S)."""
        assert track.last_dts is not None
        out_tb = track.out.time_base  # the muxer's timescale, fixed once the header is written
        limit = MAX_DTS_LEAP_S if out_tb is None else min(MAX_DTS_LEAP_S, _MUXER_MAX_TICKS * float(out_tb) / 2)
        return abs(dts - track.last_dts) * float(mp.time_base) > limit

    def _reanchor(self, track: _Track, mp: MediaPacket, dts: int) -> int:
        """Move the track's offset so that ``mp`` follows its last packet by one step; returns the new offset."""
        assert track.last_dts is not None and mp.dts is not None
        log.info("clip %s: stream %s leaps %.1f s; carrying on from its last packet", self.path.name,
                 mp.stream_index, float((dts - track.last_dts) * mp.time_base))
        track.offset = mp.dts - track.last_dts - track.step
        return track.offset

    def _mux(self, mp: MediaPacket, track: _Track, dts: int, offset: int) -> None:
        pkt = mp.packet
        # A previous mux (maybe into another clip) rebased this packet in place: restore the
        # original time base first, converting the duration back with it.
        if pkt.time_base != mp.time_base and pkt.duration and pkt.time_base:
            pkt.duration = round(pkt.duration * pkt.time_base / mp.time_base)
        pkt.time_base = mp.time_base
        pkt.dts = dts
        pkt.pts = None if mp.pts is None else mp.pts - offset
        try:
            for out in [pkt] if track.adts is None else _strip_adts(track.adts, pkt):
                out.stream = track.out
                self._container.mux(out)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise ClipWriteError(f"muxing {self.path.name}: {exc}") from exc

    def _account(self, mp: MediaPacket) -> None:
        self._packets += 1
        self._last_time = max(self._last_time, mp.time)
        self._last_wall = max(self._last_wall, mp.wall)
        dur = mp.packet.duration or 0
        end = mp.time + float(dur * mp.packet.time_base) if dur else mp.time
        self._end = max(self._end, end)

    def close(self) -> WrittenClip:
        """Finish the file (trailer, fsync) and describe it. Raises :class:`ClipWriteError`."""
        if self._closed:
            raise ClipWriteError(f"{self.path.name} already closed")
        self._closed = True
        self._close_sync_fd()
        try:
            self._container.close()
            size, digest = fsync_and_hash(self.path)
        except (av.FFmpegError, OSError) as exc:
            raise ClipWriteError(f"closing {self.path.name}: {exc}") from exc
        start = self._start if self._start is not None else 0.0
        vcodec, width, height = self._video_info or ("", 0, 0)
        return WrittenClip(
            path=self.path, size_bytes=size, sha256=digest,
            first_time=start, last_time=max(self._last_time, start),
            first_wall=self._first_wall, last_wall=max(self._last_wall, self._first_wall),
            duration_s=max(self._end - start, 0.0) if self._packets else 0.0,
            video_codec=vcodec, audio_codec=self._audio_info[0] if self._audio_info else None,
            width=width, height=height, packets=self._packets, container=self.format.muxer,
        )

    def abort(self) -> None:
        """Close whatever is open and remove the file."""
        self._closed = True
        self._discard()

    def _close_sync_fd(self) -> None:
        if self._sync_fd is not None:
            os.close(self._sync_fd)
            self._sync_fd = None

    def _discard(self) -> None:
        self._close_sync_fd()
        try:
            self._container.close()
        except Exception:  # the file is being thrown away; its trailer does not matter
            pass
        self.path.unlink(missing_ok=True)


def _is_adts(template: av.stream.Stream) -> bool:
    """AAC without a decoder config: ADTS frames, as MPEG-TS carries them (HTTP/UDP cameras, .ts files). MP4
    refuses those ("Malformed AAC bitstream"), which cost every clip of such a camera."""
    ctx = template.codec_context
    return template.type == "audio" and ctx is not None and ctx.name == "aac" and not ctx.extradata


def _strip_adts(bsf: BitStreamFilterContext, pkt: av.Packet) -> list[av.Packet]:
    """``pkt`` through ``aac_adtstoasc``, as a copy: the filter takes its input over, and a ring packet may go
    into a second clip. A damaged frame is dropped (logged at debug), as a non-monotonic one is."""
    copy = av.Packet(bytes(pkt))
    copy.pts, copy.dts, copy.duration, copy.time_base = pkt.pts, pkt.dts, pkt.duration, pkt.time_base
    try:
        out = bsf.filter(copy)
    except av.FFmpegError as exc:
        log.debug("dropping an AAC frame without a valid ADTS header: %s", exc)
        return []
    for p in out:
        p.time_base = pkt.time_base  # the filter's packets come back without one
    return out


def _codec_info(templates: Mapping[int, av.stream.Stream], kind: str) -> tuple[str, int, int] | None:
    for template in templates.values():
        if template.type == kind:
            par = template.codec_context
            width = getattr(par, "width", 0) or 0
            height = getattr(par, "height", 0) or 0
            return par.name, int(width), int(height)
    return None


def fsync_and_hash(path: Path) -> tuple[int, str]:
    """Hash the finished file and fsync it: one read pass, and the data is durable before the rename."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb+") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        os.fsync(fh.fileno())
    return size, digest.hexdigest()


def remux_file(src: Path | str, dst: Path | str, *, wall_start: float, time_start: float = 0.0) -> WrittenClip | None:
    """Remux whatever PyAV can read of ``src`` into a complete clip at ``dst``.

    Used to salvage a clip cut short by a crash (a camera's, or a microphone's audio-only one): a fragmented
    MP4 is readable up to its last complete fragment. Stream times restart at ``time_start`` and wall times at
    ``wall_start`` (the originals are not in the file). Returns None (and leaves no ``dst``) if no video
    keyframe (for audio-only clips: no packet) could be read.
    """
    try:
        source = av.open(str(src), "r")
    except (av.FFmpegError, OSError) as exc:
        log.info("unreadable clip %s: %s", Path(src).name, exc)
        return None
    with source:
        templates = {s.index: s for s in source.streams if s.type in ("video", "audio")}
        if any(s.type == "video" for s in templates.values()):
            plan = plan_recording(templates)
            if plan.format is None:
                return None
            writer = ClipWriter(dst, {i: templates[i] for i in plan.streams}, format_for(str(dst)))
        elif templates:  # a microphone's audio-only clip
            writer = ClipWriter(dst, templates, format_for(str(dst)), audio_only=True)
        else:
            return None
        try:
            _copy_packets(source, templates, writer, wall_start, time_start)
        except ClipWriteError:
            writer.abort()
            raise
        if not writer.started:
            writer.abort()
            return None
        return writer.close()


def _copy_packets(source, templates, writer: ClipWriter, wall_start: float, time_start: float) -> None:
    t0: float | None = None
    try:
        for packet in source.demux(*templates.values()):
            if packet.dts is None or packet.is_corrupt:
                continue  # flush packets, and the torn packet at a truncation point
            t = float(packet.dts * packet.time_base)
            t0 = t if t0 is None else t0
            is_video = templates[packet.stream_index].type == "video"
            mp = MediaPacket.wrap(packet, is_video=is_video, time=time_start + t - t0,
                                  wall=wall_start + t - t0)
            writer.write(mp)
    except av.FFmpegError as exc:
        # A torn fragment at the end: everything before it has been copied.
        log.debug("stopped reading %s at a damaged fragment: %s", writer.path.name, exc)
