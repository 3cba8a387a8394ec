"""Audio events: sources (camera audio, microphone, files) -> 16 kHz windows -> ONNX -> events.

Blocks from any source are windowed, scored by :func:`score_windows` (silence gate, the model on
loud windows only, batched) and fed to per-label event logic, which produces the same
``Transition`` s as the motion tracker. ``sounddevice`` is only imported when a microphone is started.
"""

from .events import AudioDetector, AudioEventLogic, WindowResult
from .labels import (
    AUDIOSET_CLASS_INDEX,
    AUDIOSET_TO_EVENTS,
    PRODUCT_LABELS,
    LabelMapError,
    read_class_map,
)
from .mic import AudioRing, MicSource, MicUnavailable
from .model import AudioEventModel, AudioModelInfo
from .scoring import ScoresModel, score_windows
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
    "AudioDetector", "AudioEventLogic", "AudioEventModel", "AudioFileSource",
    "AudioModelInfo", "AudioRing", "AudioSourceError", "AudioWindower", "CameraAudioDecoder",
    "LabelMapError", "MicSource", "MicUnavailable", "ScoresModel", "Window", "WindowResult", "read_class_map",
    "score_windows",
]
