"""Video source over PyAV: files, RTSP/HTTP with reconnect, V4L2 devices.

One reader yields, in stream order, a :class:`Connected` event per (re)connection, the record
stream's packets (:class:`recorder.MediaPacket`, demuxed only) and small gray :class:`DetectFrame`s
decoded from the video stream at the detect fps. With a single stream per camera the video is decoded
once and feeds both. Times are monotonic stream seconds across reconnects.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import av
import numpy as np

from recorder.packets import MediaPacket

from ..errors import EdgeMediaError
from .backoff import Backoff
from .frames import detect_size, gray_small

log = logging.getLogger(__name__)

_LIVE_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


@dataclass(frozen=True)
class SourceSpec:
    url: str
    record: bool = True  # yield the record stream's packets (video + first audio)
    detect_width: int | None = 320  # None: no decoding at all (record-only reader)
    detect_fps: float = 5.0
    realtime: bool = False  # pace files at their own speed
    loop: bool = False  # replay files forever
    decoder_threads: int = 1
    timeout_s: float = 10.0  # open / read timeout for network sources

    @property
    def is_live(self) -> bool:
        return self.url.startswith(_LIVE_PREFIXES) or self.url.startswith("/dev/video")


@dataclass(slots=True)
class Connected:
    streams: dict[int, av.stream.Stream]  # input stream index -> stream (record templates)
    width: int
    height: int
    session: int


@dataclass(slots=True)
class Disconnected:
    reason: str
    time: float


@dataclass(slots=True)
class DetectFrame:
    time: float
    wall: float
    image: np.ndarray  # HxW uint8


SourceEvent = Connected | Disconnected | MediaPacket | DetectFrame


class SourceError(EdgeMediaError):
    """A source that cannot be read at all (missing or undecodable file)."""


@dataclass
class SourceStats:
    sessions: int = 0
    packets: int = 0
    frames_decoded: int = 0
    frames_detect: int = 0
    decode_errors: int = 0
    failures: int = 0


def open_container(url: str, timeout_s: float) -> av.container.InputContainer:
    """Open ``url`` with sensible per-protocol options (TCP RTSP, timeouts, V4L2 query options)."""
    options: dict[str, str] = {}
    fmt = None
    if url.startswith(("rtsp://", "rtsps://")):
        options = {"rtsp_transport": "tcp", "timeout": str(int(timeout_s * 1e6))}
    elif url.startswith("/dev/video"):
        # /dev/video0?input_format=h264&video_size=1280x720&framerate=15
        url, _, query = url.partition("?")
        options, fmt = dict(parse_qsl(query)), "v4l2"
    return av.open(url, format=fmt, options=options, timeout=(timeout_s, timeout_s))


# A timestamp that jumps further than this (camera reboot, 33-bit wrap, corrupt PES header) is a
# discontinuity: time carries on from where it was instead of leaping hours ahead or back.
MAX_TS_JUMP_S = 10.0


@dataclass
class _Session:
    """Maps one connection's container timestamps onto the source's monotonic clock."""

    time_offset: float
    wall0: float
    origin: float | None = None
    last_time: float = 0.0
    jumps: int = 0

    _tb_cache: dict = field(default_factory=dict)

    def time_of(self, ts: int | None, tb) -> float | None:
        if ts is None or tb is None:
            return None
        scale = self._tb_cache.get(tb)
        if scale is None:  # Fraction arithmetic per packet is measurable; floats are plenty here
            scale = self._tb_cache[tb] = float(tb)
        secs = ts * scale
        if self.origin is None:
            self.origin = secs
        t = self.time_offset + secs - self.origin
        if abs(t - self.last_time) > MAX_TS_JUMP_S and self.last_time > self.time_offset:
            self.jumps += 1
            if self.jumps == 1:
                log.warning("timestamp jump of %.1f s (corrupt or reset stream); re-anchoring", t - self.last_time)
            self.origin += t - self.last_time  # re-anchor: this packet continues from last_time
            t = self.last_time
        self.last_time = max(self.last_time, t)
        return t

    def wall_of(self, t: float) -> float:
        return self.wall0 + (t - self.time_offset)


@dataclass
class VideoSource:
    spec: SourceSpec
    name: str = "camera"
    stop_event: threading.Event = field(default_factory=threading.Event)
    backoff: Backoff = field(default_factory=Backoff)
    stats: SourceStats = field(default_factory=SourceStats)
    # False while the consumer wants no frames (a restricted camera): decoding stops, not just use.
    decode_gate: Callable[[], bool] = lambda: True

    def __iter__(self) -> Iterator[SourceEvent]:
        next_offset = 0.0
        outage_since: float | None = None
        while not self.stop_event.is_set():
            try:
                container = open_container(self.spec.url, self.spec.timeout_s)
            except (av.FFmpegError, OSError) as exc:
                if not self.spec.is_live:
                    raise SourceError(f"{self.name}: cannot open {self.spec.url}: {exc}") from exc
                outage_since = self._note_failure(outage_since, f"cannot connect: {exc}")
                self._wait_backoff()
                continue
            if outage_since is not None:
                log.info("%s: reconnected after %.1f s", self.name, time.monotonic() - outage_since)
                outage_since = None
            self.backoff.reset()
            session = _Session(time_offset=next_offset, wall0=time.time())
            reason = "end of stream"
            try:
                try:
                    yield from self._read(container, session)
                except (av.FFmpegError, OSError) as exc:
                    reason = f"stream error: {exc}"
                # Announced while the container is still open: consumers finish clips whose
                # muxers copy codec parameters from these streams (a closed one would crash).
                yield Disconnected(reason=reason, time=session.last_time)
            finally:
                container.close()
            # Keep time monotonic: the next session starts where this one ended (plus a frame).
            next_offset = session.last_time + 0.1
            if not self.spec.is_live and not self.spec.loop:
                return
            if self.spec.is_live and not self.stop_event.is_set():
                outage_since = self._note_failure(outage_since, reason)
                self._wait_backoff()

    def _note_failure(self, since: float | None, reason: str) -> float:
        """Log once per outage, not per attempt."""
        self.stats.failures += 1
        if since is None:
            log.warning("%s: %s; reconnecting with backoff", self.name, reason)
            return time.monotonic()
        log.debug("%s: still down (%s)", self.name, reason)
        return since

    def _wait_backoff(self) -> None:
        self.stop_event.wait(self.backoff.next_delay())

    def _read(self, container: av.container.InputContainer, session: _Session) -> Iterator[SourceEvent]:
        if not container.streams.video:
            raise SourceError(f"{self.name}: {self.spec.url} has no video stream")
        video = container.streams.video[0]
        streams = [video] + list(container.streams.audio[:1]) if self.spec.record else [video]
        decode = self.spec.detect_width is not None
        if decode:
            video.codec_context.thread_count = self.spec.decoder_threads
        self.stats.sessions += 1
        size = detect_size(video.width, video.height, self.spec.detect_width or video.width)
        if video.start_time is not None and video.time_base is not None:
            session.origin = float(video.start_time * video.time_base)  # video t=0 is the camera's 0
        yield Connected({s.index: s for s in streams}, video.width, video.height, self.stats.sessions)
        pacer = _Pacer(self.stop_event) if self.spec.realtime and not self.spec.is_live else None
        sampler = _Sampler(self.spec.detect_fps)
        for packet in container.demux(streams):
            if self.stop_event.is_set():
                return
            if packet.dts is None and packet.pts is None:
                continue  # demuxer flush packet: nothing to record
            is_video = packet.stream_index == video.index
            t = session.time_of(packet.pts if packet.pts is not None else packet.dts, packet.time_base)
            if pacer is not None:
                pacer.wait_until(t)
            # Decode before handing the packet on: muxing a packet rebases its timestamps in place.
            frames = self._decode(video, packet) if decode and is_video and self.decode_gate() else ()
            self.stats.packets += 1
            if self.spec.record:
                yield MediaPacket.wrap(packet, is_video=is_video, time=t, wall=session.wall_of(t))
            for frame in frames:
                ft = session.time_of(frame.pts, frame.time_base)
                ft = t if ft is None else ft
                if sampler.take(ft):
                    self.stats.frames_detect += 1
                    yield DetectFrame(ft, session.wall_of(ft), gray_small(frame, size))

    def _decode(self, video: av.video.stream.VideoStream, packet: av.Packet) -> list[av.VideoFrame]:
        try:
            frames = video.codec_context.decode(packet)
        except av.FFmpegError as exc:
            # Corrupt slices happen on real networks; count them, report the first, keep going.
            self.stats.decode_errors += 1
            if self.stats.decode_errors == 1:
                log.warning("%s: corrupt video data (%s); skipping damaged frames", self.name, exc)
            return []
        self.stats.frames_decoded += len(frames)
        return frames


class _Sampler:
    """Picks frames at ``fps`` by stream time (detection may run slower than the stream)."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self.next_t: float | None = None

    def take(self, t: float) -> bool:
        if self.next_t is not None and t < self.next_t - self.period * 0.25:
            return False
        nxt = (self.next_t if self.next_t is not None else t) + self.period
        self.next_t = nxt if nxt > t else t + self.period
        return True


class _Pacer:
    """Sleeps so that a file plays at real time (for demos and soak tests)."""

    def __init__(self, stop_event: threading.Event) -> None:
        self.stop_event = stop_event
        self.start: tuple[float, float] | None = None

    def wait_until(self, t: float | None) -> None:
        if t is None:
            return
        if self.start is None:
            self.start = (time.monotonic(), t)
        delay = self.start[0] + (t - self.start[1]) - time.monotonic()
        if delay > 0:
            self.stop_event.wait(delay)
