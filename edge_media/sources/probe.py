"""Probe camera sources before a user relies on them (``edge-media check-config --probe``).

Opens each source once, with a bounded timeout, and says per camera whether it is reachable, what
its streams are, and whether (and in which container) its record stream can be recorded. Opens and
reads a few packets only: nothing is decoded, nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import av

from recorder.formats import plan_recording

from .video import open_container

_MAX_PACKETS = 500  # enough to meet the first video packet in any sane interleaving


@dataclass(frozen=True, slots=True)
class StreamInfo:
    kind: str  # "video" | "audio"
    codec: str
    width: int = 0
    height: int = 0
    fps: float | None = None
    sample_rate: int | None = None

    def describe(self) -> str:
        if self.kind == "video":
            fps = f" {self.fps:g} fps" if self.fps else ""
            return f"video {self.codec} {self.width}x{self.height}{fps}"
        return f"audio {self.codec} {self.sample_rate or '?'} Hz"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    name: str
    url: str  # credentials removed: this is printed
    reachable: bool
    streams: tuple[StreamInfo, ...] = ()
    container: str | None = None  # clip container ("mp4", "matroska"); None: cannot be recorded
    problem: str = ""  # why not reachable / not recordable, or what is left out of clips

    @property
    def ok(self) -> bool:
        return self.reachable and self.container is not None

    @property
    def has_audio(self) -> bool:
        return any(s.kind == "audio" for s in self.streams)

    def describe(self) -> str:
        """One line for the user."""
        if not self.reachable:
            return f"camera {self.name}: UNREACHABLE ({self.url}): {self.problem}"
        streams = ", ".join(s.describe() for s in self.streams) or "no streams"
        if not self.has_audio:
            streams += ", no audio"
        if self.container is None:
            return f"camera {self.name}: CANNOT BE RECORDED — {streams}: {self.problem}"
        where = "MP4" if self.container == "mp4" else "Matroska (.mkv): its codecs do not fit MP4"
        extra = f"; {self.problem}" if self.problem else ""
        return f"camera {self.name}: ok — {streams}; recorded as {where}{extra}"


def probe_source(name: str, url: str, *, timeout_s: float = 10.0) -> ProbeResult:
    """Open ``url`` as the service would and describe what it can do with it."""
    shown = redact(url)
    try:
        container = open_container(url, timeout_s)
    except (av.FFmpegError, OSError, ValueError) as exc:
        return ProbeResult(name, shown, False, problem=f"cannot open: {_reason(exc)}")
    with container:
        if not container.streams.video:
            return ProbeResult(name, shown, False, problem="no video stream")
        video = container.streams.video[0]
        recorded = [video, *container.streams.audio[:1]]
        infos = tuple(_info(s) for s in recorded)
        problem = _first_video_packet_problem(container, video)
        if problem:
            return ProbeResult(name, shown, False, infos, problem=problem)
        plan = plan_recording({s.index: s for s in recorded})
        return ProbeResult(name, shown, True, infos, plan.format.muxer if plan.format else None, plan.note)


def _first_video_packet_problem(container: av.container.InputContainer, video: av.stream.Stream) -> str:
    try:
        for i, packet in enumerate(container.demux(video)):
            if packet.size and packet.dts is not None:
                return ""
            if i >= _MAX_PACKETS:
                break
    except (av.FFmpegError, OSError) as exc:
        return f"cannot read: {_reason(exc)}"
    return "no video packet could be read"


def _info(stream: av.stream.Stream) -> StreamInfo:
    ctx = stream.codec_context
    if stream.type == "video":
        rate = stream.average_rate or stream.guessed_rate
        return StreamInfo("video", ctx.name, getattr(ctx, "width", 0) or 0, getattr(ctx, "height", 0) or 0,
                          round(float(rate), 3) if rate else None)
    return StreamInfo("audio", ctx.name, sample_rate=getattr(ctx, "sample_rate", 0) or None)


def _reason(exc: BaseException) -> str:
    # FFmpeg errors repeat the path after the message; the user knows which camera this is.
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(": '", 1)[0]


def redact(url: str) -> str:
    """``rtsp://user:secret@host/x`` → ``rtsp://***@host/x``: probe output ends up in bug reports."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
