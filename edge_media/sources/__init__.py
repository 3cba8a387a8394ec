"""Video (and later audio) sources."""

from .backoff import Backoff
from .frames import MIN_DETECT_SIDE, detect_size, gray_small
from .video import (
    Connected,
    DetectFrame,
    Disconnected,
    SourceError,
    SourceEvent,
    SourceSpec,
    SourceState,
    SourceStats,
    VideoSource,
    open_container,
)

__all__ = [
    "MIN_DETECT_SIDE", "Backoff", "Connected", "DetectFrame", "Disconnected", "SourceError", "SourceEvent",
    "SourceSpec", "SourceState", "SourceStats", "VideoSource", "detect_size", "gray_small", "open_container",
]
