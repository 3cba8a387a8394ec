"""Detection: onnxruntime sessions, batching over cameras and per-camera detector state."""

from edge_media.detect.motion import MotionDetector, MotionResult, MotionSettings

__all__ = ["MotionDetector", "MotionResult", "MotionSettings"]
