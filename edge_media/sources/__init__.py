"""Video (and later audio) sources."""

from .backoff import Backoff
from .frames import detect_size, gray_small
from .video import (
    Connected,
    DetectFrame,
    Disconnected,
    SourceError,
    SourceEvent,
    SourceSpec,
    SourceStats,
    VideoSource,
    open_container,
)

__all__ = [
    "Backoff", "Connected", "DetectFrame", "Disconnected", "SourceError", "SourceEvent",
    "SourceSpec", "SourceStats", "VideoSource", "detect_size", "gray_small", "open_container",
]
