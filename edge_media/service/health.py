"""Storage health: turns the upload worker's and the spool quota's state into storage notices on the bus.

Polled from the service's control loop (every couple of seconds); each poll reads counters already in memory
and one outbox count query, never the spool directory. A notice is published when a problem begins and when it
clears, never while it lasts:

- ``store_unreachable``: the upload worker has held the store down (an outage, or a refusal) for
  ``down_after_s`` (a blip of a few minutes is normal on a home uplink and is not news);
- ``quota_reached``: the spool quota refused or dropped clips since the last poll, or stopped recording;
  clears once recording is allowed and nothing was dropped or refused for ``quota_clear_s``;
- ``upload_failed``: clips are parked ``failed`` in the outbox (a permanent store error); clears when none is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from uploader.outbox import Outbox
from uploader.worker import UploadWorker

from .bus import StorageNotice, StorageProblem
from .housekeeping import SpoolQuota

QUOTA_CLEAR_S = 60.0


@dataclass
class _Problem:
    active: bool = False
    since: float | None = None  # when the condition was first seen (store_unreachable's grace period)


class StorageHealth:
    def __init__(self, publish: Callable[[StorageNotice], None], *, worker: UploadWorker, outbox: Outbox,
                 quota: SpoolQuota, down_after_s: float, quota_clear_s: float = QUOTA_CLEAR_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.publish, self.worker, self.outbox, self.quota = publish, worker, outbox, quota
        self.down_after_s, self.quota_clear_s, self.clock = down_after_s, quota_clear_s, clock
        self.problems: dict[StorageProblem, _Problem] = {
            "store_unreachable": _Problem(), "quota_reached": _Problem(), "upload_failed": _Problem()}
        self._quota_events = quota.dropped + quota.refused
        self._last_quota_event = -float("inf")

    def poll(self) -> None:
        now = self.clock()
        self._store(now)
        self._quota(now)
        failed = self.outbox.counts()["failed"]
        self._set("upload_failed", failed > 0,
                  f"{failed} clip{'s' if failed != 1 else ''} parked failed: {self._error()}" if failed else "")

    def _store(self, now: float) -> None:
        p = self.problems["store_unreachable"]
        if not self.worker.store_down:
            p.since = None
            self._set("store_unreachable", False, "store reachable again")
            return
        if p.since is None:
            p.since = now
        if now - p.since >= self.down_after_s:
            self._set("store_unreachable", True, f"no upload for {now - p.since:.0f} s: {self._error()}")

    def _quota(self, now: float) -> None:
        events = self.quota.dropped + self.quota.refused
        if events != self._quota_events:
            self._quota_events, self._last_quota_event = events, now
        over = not self.quota.recording_allowed or now - self._last_quota_event < self.quota_clear_s
        detail = (f"spool over quota ({self.quota.policy}): {self.quota.dropped} clips dropped, "
                  f"{self.quota.refused} refused so far") if over else "spool below quota"
        self._set("quota_reached", over, detail)

    def _set(self, problem: StorageProblem, active: bool, detail: str) -> None:
        p = self.problems[problem]
        if p.active != active:
            p.active = active
            self.publish(StorageNotice(problem=problem, active=active, detail=detail))

    def _error(self) -> str:
        err = self.worker.last_error
        return str(err) if err is not None else "no error recorded"
