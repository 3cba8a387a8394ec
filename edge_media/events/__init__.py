"""Event tracking (and, later, notifications)."""

from .tracker import Event, EventTracker, TrackerSettings, Transition

__all__ = ["Event", "EventTracker", "TrackerSettings", "Transition"]
