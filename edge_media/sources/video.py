"""Video source over PyAV: files, RTSP/HTTP with reconnect, V4L2 devices.

One reader yields, in stream order, a :class:`Connected` event per (re)connection, the record
stream's packets (:class:`recorder.MediaPacket`, demuxed only) and small gray :class:`DetectFrame`s
decoded from the video stream at the detect fps. With a single stream per camera the video is decoded
once and feeds both. Times are monotonic stream seconds across reconnects.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import av
import numpy as np

from recorder.packets import MediaPacket

from ..errors import EdgeMediaError
from .backoff import Backoff
from .frames import FrameSizeError, detect_size, gray_small
from .timing import MissingTimestamps, Session

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
    untimed_dropped: int = 0  # packets without timestamps that could not be given one
    decode_seconds: float = 0.0  # time spent in the decoder (read by the hub's metrics at scrape time)


@dataclass
class SourceState:
    """Where a source stands, for the start-up report. ``settled`` is set at the first answer:
    connected, retrying (a live camera that is down), failed (a file that cannot be read) or ended."""

    name: str = "starting"
    problem: str | None = None
    opened: bool = False  # connected at least once
    settled: threading.Event = field(default_factory=threading.Event)
    # Told of every change of ``name`` (on the reader thread; must not block): the hub's live status.
    listener: Callable[[str, str | None], None] | None = None

    def set(self, name: str, problem: str | None = None) -> None:
        changed = name != self.name
        self.name, self.problem = name, problem
        self.opened = self.opened or name == "connected"
        self.settled.set()
        if changed and self.listener is not None:
            self.listener(name, problem)


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


@dataclass
class VideoSource:
    """Iterating yields the events of one session after another until the source ends (a file),
    fails for good (a file that cannot be read: :class:`SourceError`) or ``stop_event`` is set.

    Every reopen -- a live camera's reconnect or a looping file's replay -- waits a backoff delay
    first, at least its floor, and the delay grows while sessions yield nothing usable: a raw stream
    without timestamps or a one-frame file can never spin a core. Iterating again after the consumer
    gave up on an iteration (a crash in its handling) continues the same monotonic clock.
    """

    spec: SourceSpec
    name: str = "camera"
    stop_event: threading.Event = field(default_factory=threading.Event)
    backoff: Backoff = field(default_factory=Backoff)
    stats: SourceStats = field(default_factory=SourceStats)
    # False while the consumer wants no frames (a restricted camera): decoding stops, not just use.
    decode_gate: Callable[[], bool] = lambda: True
    state: SourceState = field(default_factory=SourceState)
    _next_offset: float = 0.0
    _told: set[str] = field(default_factory=set)  # one-time warnings already given

    def __iter__(self) -> Iterator[SourceEvent]:
        outage_since: float | None = None
        while not self.stop_event.is_set():
            try:
                container = open_container(self.spec.url, self.spec.timeout_s)
            except (av.FFmpegError, OSError) as exc:
                why = f"cannot open {self.spec.url}: {_why(self.spec.url, exc)}"
                if not self.spec.is_live:
                    self.state.set("failed", why)
                    raise SourceError(f"{self.name}: {why}") from exc
                self.state.set("retrying", why)
                outage_since = self._note_failure(outage_since, why)
                self._wait_backoff()
                continue
            if outage_since is not None:
                log.info("%s: reconnected after %.1f s", self.name, time.monotonic() - outage_since)
                outage_since = None
            session = Session(time_offset=self._next_offset, wall0=time.time())
            reason, error = yield from self._session(container, session)
            replays = self.spec.is_live or (self.spec.loop and isinstance(error, _ReaderCrash))
            if error is not None and not replays:  # a file's content will not change: fail for good
                why = f"{self.spec.url} {error}"
                self.state.set("failed", why)
                raise SourceError(f"{self.name}: {why}")
            again = (self.spec.is_live or self.spec.loop) and not self.stop_event.is_set()
            if not session.usable and error is None and not self.stop_event.is_set():  # stopped early: no news
                self._tell("unusable", "%s: %s gave no usable video (%s)%s", self.name, self.spec.url, reason,
                           "; reopening it with growing backoff" if again else "")
            if not again:
                self.state.set("ended", reason)
                return
            if self.spec.is_live:
                self.state.set("retrying", reason)
                outage_since = self._note_failure(outage_since, reason)
            self._wait_backoff()

    def _session(self, container: av.container.InputContainer, session: Session
                 ) -> Generator[SourceEvent, None, tuple[str, Exception | None]]:
        """One connection's events; returns why it ended and the error that ended it, if any."""
        reason, error = "end of stream", None
        try:
            try:
                yield from self._read(container, session)
            except (av.FFmpegError, OSError) as exc:
                reason = f"stream error: {exc}"
            except SourceError as exc:
                reason, error = str(exc), exc
            except Exception as exc:  # a bug in decoding or scaling: log it, the caller reopens
                reason, error = f"reader error: {exc!r}", _ReaderCrash(f"could not be read: {exc!r}")
                if self._tell("crash", "%s: reading %s failed; reopening with backoff", self.name,
                              self.spec.url, exc_info=True) is False:
                    log.error("%s: reading %s failed again: %r", self.name, self.spec.url, exc)
            # Announced while the container is still open: consumers finish clips whose
            # muxers copy codec parameters from these streams (a closed one would crash).
            if session.connected:
                yield Disconnected(reason=reason, time=session.last_time)
        finally:
            container.close()
            # Keep time monotonic: the next session starts where this one ended (plus a frame).
            self._next_offset = max(self._next_offset, session.last_time + 0.1)
        return reason, error

    def _tell(self, topic: str, msg: str, *args, exc_info: bool = False) -> bool:
        """Log a warning once per source (not per loop or session); False if already told."""
        if topic in self._told:
            return False
        self._told.add(topic)
        log.warning(msg, *args, exc_info=exc_info)
        return True

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

    def _read(self, container: av.container.InputContainer, session: Session) -> Iterator[SourceEvent]:
        if not container.streams.video:
            raise SourceError("has no video stream")
        video = container.streams.video[0]
        streams = [video] + list(container.streams.audio[:1]) if self.spec.record else [video]
        sizer = _DetectSizer(self.spec.detect_width) if self.spec.detect_width is not None else None
        if sizer is not None:
            video.codec_context.thread_count = self.spec.decoder_threads
            if video.width and video.height:
                sizer.size_of(video.width, video.height)  # refuse impossible sizes before Connected
        self.stats.sessions += 1
        if video.start_time is not None and video.time_base is not None:
            session.origin = float(video.start_time * video.time_base)  # video t=0 is the camera's 0
        session.connected = True
        self.state.set("connected")
        yield Connected({s.index: s for s in streams}, video.width, video.height, self.stats.sessions)
        pacer = _Pacer(self.stop_event) if self.spec.realtime and not self.spec.is_live else None
        sampler = _Sampler(self.spec.detect_fps)
        stamps = MissingTimestamps(video)
        for packet in container.demux(streams):
            if self.stop_event.is_set():
                return
            if not self._timed(packet, stamps):
                continue
            t = session.time_of(packet.pts if packet.pts is not None else packet.dts, packet.time_base)
            if t is None:
                continue  # no time base: cannot be placed on the clock
            if pacer is not None:
                pacer.wait_until(t)
            is_video = packet.stream_index == video.index
            # Decode before handing the packet on: muxing a packet rebases its timestamps in place.
            decoding = sizer is not None and is_video and self.decode_gate()
            frames = self._decode(video, packet) if decoding else []
            self.stats.packets += 1
            if sizer is None or not decoding and is_video:
                self._used(session)  # record-only, or frames not wanted now (restricted): nothing to judge
            if self.spec.record:
                yield MediaPacket.wrap(packet, is_video=is_video, time=t, wall=session.wall_of(t))
            if frames and sizer is not None:
                yield from self._detect_frames(frames, t, session, sampler, sizer)

    def _detect_frames(self, frames: list[av.VideoFrame], t: float, session: Session, sampler: _Sampler,
                       sizer: _DetectSizer) -> Iterator[DetectFrame]:
        for frame in frames:
            ft = session.time_of(frame.pts, frame.time_base)
            ft = t if ft is None else ft
            if sampler.take(ft):
                self.stats.frames_detect += 1
                session.frames += 1
                if session.frames >= 2:
                    self._used(session)  # motion needs a pair: one frame alone is no use
                yield DetectFrame(ft, session.wall_of(ft), gray_small(frame, sizer.size_of(frame.width, frame.height)))

    def _timed(self, packet: av.Packet, stamps: MissingTimestamps) -> bool:
        """False for packets to skip: the demuxer's empty flush packet, and packets without
        timestamps that cannot be given one (counted, reported once)."""
        if packet.dts is not None or packet.pts is not None:
            stamps.seen(packet)
            return True
        if packet.size == 0:
            return False  # demuxer flush packet: nothing to record
        if stamps.fill(packet):
            self._tell("untimed", "%s: %s has packets without timestamps; timing them at %s fps",
                       self.name, self.spec.url, f"{stamps.rate:g}" if stamps.rate else "their own duration")
            return True
        self.stats.untimed_dropped += 1
        self._tell("dropped", "%s: %s has packets without timestamps that cannot be timed; dropping them",
                   self.name, self.spec.url)
        return False

    def _used(self, session: Session) -> None:
        if not session.usable:
            session.usable = True
            self.backoff.reset()  # only a session that delivered something resets the delay

    def _decode(self, video: av.video.stream.VideoStream, packet: av.Packet) -> list[av.VideoFrame]:
        started = time.perf_counter()
        try:
            frames = video.codec_context.decode(packet)
        except av.FFmpegError as exc:
            # Corrupt slices happen on real networks; count them, report the first, keep going.
            self.stats.decode_errors += 1
            if self.stats.decode_errors == 1:
                log.warning("%s: corrupt video data (%s); skipping damaged frames", self.name, exc)
            return []
        finally:
            self.stats.decode_seconds += time.perf_counter() - started
        self.stats.frames_decoded += len(frames)
        return frames


class _ReaderCrash(SourceError):
    """An unexpected error while reading (a bug, not the file's content): a replaying source reopens."""


def _why(url: str, exc: BaseException) -> str:
    """The short reason of an open failure ("No such file or directory"), without repeating the path."""
    if os.path.isfile(url) and os.path.getsize(url) == 0:
        return "the file is empty"
    return getattr(exc, "strerror", None) or str(exc)


class _DetectSizer:
    """Detect frame size per source frame size (a camera may change resolution mid-stream)."""

    def __init__(self, detect_width: int) -> None:
        self.detect_width = detect_width
        self._sizes: dict[tuple[int, int], tuple[int, int]] = {}

    def size_of(self, width: int, height: int) -> tuple[int, int]:
        size = self._sizes.get((width, height))
        if size is None:
            try:
                size = self._sizes[(width, height)] = detect_size(width, height, self.detect_width)
            except FrameSizeError as exc:
                raise SourceError(str(exc)) from None
        return size


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
