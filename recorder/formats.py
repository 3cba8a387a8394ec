"""Clip containers: fragmented MP4 where the codecs fit, Matroska where they do not.

Old CCTV cameras send codecs MP4 cannot hold (MPEG-4 part 2 as ``msmpeg4``, ...); Matroska holds
most of them. The choice is made once per connection, from what the muxers themselves accept: a
header is built in memory with the camera's real streams, so no allow-list can drift from FFmpeg.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field

import av


@dataclass(frozen=True, slots=True)
class ClipFormat:
    muxer: str  # FFmpeg muxer name, also written to the sidecar's ``container``
    extension: str
    # flush_packets: every completed fragment/cluster reaches the file at once instead of waiting
    # in the 256 KiB I/O buffer, so a crash loses at most the fragment being built.
    options: Mapping[str, str] = field(default_factory=dict)


MP4 = ClipFormat("mp4", ".mp4", {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"})
MATROSKA = ClipFormat("matroska", ".mkv", {"flush_packets": "1"})
FORMATS = (MP4, MATROSKA)  # in order of preference: MP4 plays everywhere, browsers included
CLIP_EXTENSIONS = tuple(f.extension for f in FORMATS)


def format_for(path_or_ext: str) -> ClipFormat:
    """The clip format of a file name or extension (``.mkv`` → Matroska); MP4 otherwise."""
    return next((f for f in FORMATS if str(path_or_ext).lower().endswith(f.extension)), MP4)


@dataclass(frozen=True, slots=True)
class RecordingPlan:
    """How a connection's streams will be recorded: which container, which input streams."""

    format: ClipFormat | None  # None: nothing can be recorded
    streams: tuple[int, ...]  # input stream indexes that go into clips
    note: str = ""  # why nothing can be recorded, or which stream is left out

    @property
    def recordable(self) -> bool:
        return self.format is not None


def plan_recording(templates: Mapping[int, av.stream.Stream]) -> RecordingPlan:
    """Pick the first container that holds every stream; else the video alone; else say why not."""
    video = tuple(i for i, s in templates.items() if s.type == "video")
    if not video:
        return RecordingPlan(None, (), "no video stream")
    everything = tuple(templates)
    problems: list[str] = []
    for indexes in (everything, video) if everything != video else (video,):
        for fmt in FORMATS:
            problem = _muxer_refuses(fmt, [templates[i] for i in indexes])
            if problem is None:
                left_out = [templates[i] for i in everything if i not in indexes]
                note = "; ".join(f"{s.type} codec {_codec(s)} fits neither MP4 nor Matroska: recorded without it"
                                 for s in left_out)
                return RecordingPlan(fmt, indexes, note)
            problems.append(problem)
    codecs = "/".join(_codec(templates[i]) for i in video)
    return RecordingPlan(None, (), f"video codec {codecs} fits neither MP4 nor Matroska ({problems[-1]})")


def _muxer_refuses(fmt: ClipFormat, streams: list[av.stream.Stream]) -> str | None:
    """Build the header in memory: the muxer's own checks (codec tags, extradata) decide."""
    out = av.open(io.BytesIO(), "w", format=fmt.muxer, options=dict(fmt.options))
    try:
        for s in streams:
            out.add_stream_from_template(s)
        out.start_encoding()
    except (av.FFmpegError, ValueError, TypeError) as exc:
        return str(exc)
    finally:
        try:
            out.close()
        except (av.FFmpegError, ValueError):
            pass  # an empty in-memory file: its trailer does not matter
    return None


def _codec(stream: av.stream.Stream) -> str:
    return stream.codec_context.name if stream.codec_context is not None else "unknown"
