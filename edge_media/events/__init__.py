"""Event tracking and the clip decision (pure logic; later, notifications).

``Event`` is the one event value type from detector to clip sidecar; it is defined in
``recorder.events`` (the lowest layer, beside the sidecar it is written into) and re-exported here.
"""

from recorder.events import Event

from .clips import (
    ClipDecider,
    ClipSettings,
    CutClip,
    Decision,
    EndClip,
    NoClip,
    StartClip,
    UpdateClip,
)
from .tracker import EventTracker, TrackerSettings, Transition

__all__ = [
    "ClipDecider", "ClipSettings", "CutClip", "Decision", "EndClip", "Event", "EventTracker", "NoClip",
    "StartClip", "TrackerSettings", "Transition", "UpdateClip",
]
