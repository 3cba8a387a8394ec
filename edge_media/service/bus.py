"""The hub's notices: what happened that someone outside the pipeline may want to know.

The pipeline publishes small frozen values here (an event started or ended, a camera connected or dropped, a
storage problem began or cleared) and never waits for anyone: every subscriber is called on the publishing
thread and must only hand the notice over (put it on its own queue). Notifications (MQTT, webhooks), the API's
live camera status and the metrics all listen here, so the pipeline knows none of them.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger(__name__)

EventPhase = Literal["start", "end"]
StorageProblem = Literal["store_unreachable", "quota_reached", "upload_failed"]


@dataclass(frozen=True, slots=True)
class EventNotice:
    """A motion or audio event started or ended on a camera or microphone. Times are wall-clock epoch seconds."""

    source: str  # camera or microphone name (this hub's own view: notices never leave the hub unredacted)
    label: str  # "motion" or an audio label ("smoke_co_alarm", ...)
    phase: EventPhase
    event_id: str  # the same for an event's start and end
    score: float
    start: float
    end: float | None = None
    at: float = field(default_factory=time.time)

    @property
    def is_motion(self) -> bool:
        return self.label == "motion"


@dataclass(frozen=True, slots=True)
class SourceNotice:
    """A camera's (or microphone's) connection changed: ``state`` is connected, retrying, failed or ended."""

    source: str
    state: str
    problem: str | None = None
    at: float = field(default_factory=time.time)

    @property
    def connected(self) -> bool:
        return self.state == "connected"


@dataclass(frozen=True, slots=True)
class StorageNotice:
    """A storage problem began (``active``) or cleared."""

    problem: StorageProblem
    active: bool
    detail: str = ""
    at: float = field(default_factory=time.time)


Notice = EventNotice | SourceNotice | StorageNotice
Subscriber = Callable[[Notice], None]


def event_id(source: str, label: str, start: float) -> str:
    """Stable id of one event (its start never changes), the same for its start and end notices."""
    return hashlib.sha256(f"{source}\0{label}\0{start:.3f}".encode()).hexdigest()[:16]


class HubBus:
    """Fan-out of notices to subscribers. A subscriber that raises is logged and kept: one broken listener
    must not stop the others or the pipeline."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Add ``fn``; returns a function that removes it again."""
        with self._lock:
            self._subscribers = [*self._subscribers, fn]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not fn]

        return unsubscribe

    def publish(self, notice: Notice) -> None:
        for fn in self._subscribers:  # a copy-on-write list: no lock held while calling out
            try:
                fn(notice)
            except Exception:
                log.exception("notice subscriber %r failed on %s", fn, type(notice).__name__)
