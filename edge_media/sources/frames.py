"""Small gray detect frames from decoded video frames, without per-pixel Python.

For planar YUV the luma plane *is* the gray image: we view it through numpy (no copy, minding
``line_size`` padding) and let OpenCV's INTER_AREA shrink it. Measured on the hub this is several
times cheaper than ``frame.reformat(w, h, "gray")`` (swscale), which costs as much as the decode.
"""

from __future__ import annotations

import av
import cv2
import numpy as np

# Pixel formats whose first plane is 8-bit luma.
_LUMA_FIRST = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}


def detect_size(width: int, height: int, detect_width: int) -> tuple[int, int]:
    """(w, h) of the detect frame: ``detect_width`` wide (never upscaled), even, aspect kept."""
    w = min(detect_width, width) & ~1
    h = max(2, int(round(height * w / width / 2)) * 2)
    return w, h


def luma_view(frame: av.VideoFrame) -> np.ndarray:
    """The Y plane as an HxW uint8 view of the frame's own buffer (no copy)."""
    plane = frame.planes[0]
    buf = np.frombuffer(plane, np.uint8)
    return buf.reshape(-1, plane.line_size)[: frame.height, : frame.width]


def gray_small(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """HxW uint8 gray frame of ``size`` = (w, h), contiguous and owned (safe to queue)."""
    w, h = size
    if frame.format.name in _LUMA_FIRST:
        y = luma_view(frame)
        if (frame.width, frame.height) == (w, h):
            return y.copy()
        return cv2.resize(y, (w, h), interpolation=cv2.INTER_AREA)
    # Rare formats (RGB webcams, 10-bit): let swscale do both conversion and scaling.
    return frame.reformat(width=w, height=h, format="gray").to_ndarray()
