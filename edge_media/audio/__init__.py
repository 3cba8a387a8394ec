"""Audio events: sources (camera audio, microphone, files) -> 16 kHz windows -> ONNX -> events.

Blocks from any source go through :class:`AudioDetector` (windower with a silence gate, the model
on loud windows only, per-label event logic) and come out as the same ``Transition`` s the motion
tracker produces. ``sounddevice`` is only imported when a microphone is started.
"""

from .events import AudioDetector, AudioEvent, AudioEventLogic, WindowResult
from .labels import (
    AUDIOSET_CLASS_INDEX,
    AUDIOSET_TO_EVENTS,
    PRODUCT_LABELS,
    LabelMapError,
    read_class_map,
)
from .mic import AudioRing, MicSource, MicUnavailable
from .model import AudioEventModel, AudioModelInfo
from .sources import (
    AudioBlock,
    AudioDecodeStats,
    AudioFileSource,
    AudioSourceError,
    CameraAudioDecoder,
)
from .windows import AudioWindower, Window

__all__ = [
    "AUDIOSET_CLASS_INDEX", "AUDIOSET_TO_EVENTS", "PRODUCT_LABELS", "AudioBlock", "AudioDecodeStats",
    "AudioDetector", "AudioEvent", "AudioEventLogic", "AudioEventModel", "AudioFileSource",
    "AudioModelInfo", "AudioRing", "AudioSourceError", "AudioWindower", "CameraAudioDecoder",
    "LabelMapError", "MicSource", "MicUnavailable", "Window", "WindowResult", "read_class_map",
]
