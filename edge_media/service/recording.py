"""Carry out clip decisions on a recorder: the one place where a :class:`ClipDecider`'s decisions
meet ``recorder`` (a camera's packet recorder or an unpaired microphone's audio recorder)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from recorder import Event

from ..events import ClipDecider, CutClip, Decision, EndClip, NoClip, StartClip, UpdateClip

log = logging.getLogger(__name__)


class ClipRecorder(Protocol):
    def start(self, at: float, events: Sequence[Event]) -> float | None: ...
    def update(self, event: Event) -> None: ...
    def cut(self, at: float, events: Sequence[Event]) -> None: ...
    def stop(self, end_time: float) -> None: ...
    def close(self) -> None: ...


def drive(name: str, recorder: ClipRecorder, decider: ClipDecider, decisions: Sequence[Decision]) -> None:
    """Apply ``decisions`` in order; the clip's real start goes back to the decider (``max_clip_s``
    is measured from the keyframe the clip opened at)."""
    for d in decisions:
        if isinstance(d, StartClip):
            decider.opened(recorder.start(d.at, d.events))
        elif isinstance(d, UpdateClip):
            recorder.update(d.event)
        elif isinstance(d, CutClip):
            recorder.cut(d.at, d.events)
        elif isinstance(d, EndClip):
            if d.now:
                recorder.close()
            else:
                recorder.stop(d.at)
        elif isinstance(d, NoClip) and d.reason == "spool_full":
            log.warning("%s: not recording this event (%s): the spool is full", name, d.event.label)
