"""Real encoded test media: the package's sample generator (shared with the demo) plus helpers
that demux a file into MediaPackets and read a written clip back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from edge_media.tools.samples import MovingBox, VideoSpec, background, luma_frames, make_video
from recorder import MediaPacket

__all__ = ["WALL0", "MovingBox", "VideoSpec", "background", "demux", "luma_frames", "make_source", "make_video",
           "raw_h264", "read_clip", "tiny_video"]

WALL0 = 1_790_000_000.0


@contextmanager
def demux(path: Path) -> Iterator[tuple[dict[int, av.stream.Stream], list[MediaPacket]]]:
    """All packets of ``path`` as MediaPackets (time = dts seconds); the container stays open inside."""
    with av.open(str(path)) as container:
        streams = {s.index: s for s in container.streams if s.type in ("video", "audio")}
        packets = []
        for pkt in container.demux(*streams.values()):
            if pkt.dts is None:
                continue
            t = float(pkt.dts * pkt.time_base)
            packets.append(MediaPacket.wrap(pkt, is_video=streams[pkt.stream_index].type == "video",
                                            time=t, wall=WALL0 + t))
        yield streams, packets


def read_clip(path: Path) -> dict:
    """Video/audio packet payloads, decoded video frame count and pts of the clip at ``path``."""
    info: dict = {"video": [], "audio": [], "frames": 0, "frame_times": []}
    with av.open(str(path)) as clip:
        v = clip.streams.video[0]
        info.update(codec=v.codec_context.name, width=v.codec_context.width, height=v.codec_context.height,
                    extradata=v.codec_context.extradata,
                    audio_codec=clip.streams.audio[0].codec_context.name if clip.streams.audio else None)
        for pkt in clip.demux():
            if pkt.dts is None:
                continue
            kind = "video" if pkt.stream.type == "video" else "audio"
            info[kind].append((float(pkt.dts * pkt.time_base), bytes(pkt)))
            if kind == "video":
                for frame in pkt.decode():
                    info["frames"] += 1
                    info["frame_times"].append(float(frame.pts * frame.time_base))
    return info


def make_source(root: Path, suffix: str = ".mp4", width: int = 640, height: int = 360) -> Path:
    spec = VideoSpec(width=width, height=height, duration_s=10.0, gop=30, fps=15, audio=True,
                     boxes=[MovingBox(2, 4)])
    return make_video(root / f"source{suffix}", spec)


def raw_h264(src: Path, dest: Path) -> Path:
    """The video of ``src`` as a raw Annex-B .h264 stream: no container, no timestamps."""
    with av.open(str(src)) as inp, av.open(str(dest), "w", format="h264") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for pkt in inp.demux(inp.streams.video[0]):
            if pkt.dts is not None:
                pkt.stream = stream
                out.mux(pkt)
    return dest


def tiny_video(path: Path, width: int, height: int, frames: int = 10) -> Path:
    """A real H.264 file of ``width`` x ``height`` (yuv444p allows odd sizes such as 1x1)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=15)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv444p"
        for i in range(frames):
            rgb = np.full((height, width, 3), i * 20 % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p")
            frame.pts, frame.time_base = i, Fraction(1, 15)
            for pkt in vs.encode(frame):
                out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)
    return path
