"""Old CCTV media: video codecs MP4 cannot hold (MPEG-4 part 2 as ``msmpeg4``, ``wmv2``) in AVI,
encoded with PyAV from the same synthetic scenes as ``media.make_video``."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from media import VideoSpec, luma_frames


def make_legacy_video(path: Path, spec: VideoSpec, codec: str = "msmpeg4") -> Path:
    """Encode ``spec`` (video only) with ``codec`` into ``path`` (an .avi holds all of them)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.codec_context.gop_size = spec.gop
        chroma = np.full((spec.height // 2, spec.width // 2), 128, np.uint8).reshape(-1, spec.width)
        for i, _t, luma in luma_frames(spec):
            frame = av.VideoFrame.from_ndarray(np.concatenate([luma.astype(np.uint8), chroma, chroma]),
                                               format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, spec.fps)
            for pkt in stream.encode(frame):
                out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)
    return path
