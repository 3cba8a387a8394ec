"""Spool quota and local retention: the hub's disk never fills, and nothing is kept past its time.

Over quota, space is taken back in order of least harm: local copies of clips already safe in the
store go first, then (``drop-oldest``) the oldest clips still waiting for upload — each drop is
audited and logged — or (``stop-recording``) new clips are refused until the spool drains.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from recorder import Spool
from uploader.db import Database
from uploader.index import ClipIndex
from uploader.outbox import Outbox

log = logging.getLogger(__name__)

RESUME_FRACTION = 0.9  # stop-recording resumes below 90 % of the quota (no flapping at the edge)


class SpoolQuota:
    def __init__(self, spool: Spool, outbox: Outbox, db: Database, *, quota_bytes: int, policy: str) -> None:
        self.spool, self.outbox, self.db = spool, outbox, db
        self.quota, self.policy = quota_bytes, policy
        self.recording_allowed = True
        self.dropped = 0

    def enforce(self) -> None:
        usage = self.spool.usage_bytes()
        if usage <= self.quota:
            if not self.recording_allowed and usage < self.quota * RESUME_FRACTION:
                self.recording_allowed = True
                log.warning("spool below quota again (%d bytes); recording resumes", usage)
            return
        usage = self._evict_local_copies(usage)
        if usage <= self.quota:
            return
        if self.policy == "drop-oldest":
            self._drop_oldest(usage)
        elif self.recording_allowed:
            self.recording_allowed = False
            log.error("spool over quota (%d of %d bytes) and policy is stop-recording: "
                      "no new clips until uploads catch up", usage, self.quota)

    def _evict_local_copies(self, usage: int) -> int:
        index = ClipIndex(self.db)
        for copy in index.list_local_copies():
            if usage <= self.quota:
                break
            usage -= _forget_local_copy(index, copy.key, copy.path)
        return usage

    def _drop_oldest(self, usage: int) -> None:
        freed, count = 0, 0
        for item in self.outbox.pending():
            if usage - freed <= self.quota:
                break
            if self.outbox.drop(item.clip_id, "spool over quota (drop-oldest)") is None:
                continue  # being uploaded right now: it frees itself
            freed += _unlink(item.clip_path) + _unlink(item.sidecar_path)
            count += 1
        self.dropped += count
        log.warning("spool over quota (%d of %d bytes): dropped the %d oldest unsent clips (%d bytes)",
                    usage, self.quota, count, freed)


def expire_local_copies(db: Database, *, keep_days: float, now: float | None = None) -> int:
    """Delete local copies of uploaded clips older than ``keep_days``; returns how many."""
    cutoff = (time.time() if now is None else now) - keep_days * 86400
    index = ClipIndex(db)
    copies = index.list_local_copies(uploaded_before=cutoff)
    for copy in copies:
        _forget_local_copy(index, copy.key, copy.path)
    return len(copies)


def _forget_local_copy(index: ClipIndex, key: str, path: Path) -> int:
    """Delete an uploaded clip's local copy and record that it is gone; returns the bytes freed."""
    freed = _unlink(path)
    index.forget_local_copy(key)
    return freed


def _unlink(path: Path) -> int:
    try:
        size = path.stat().st_size
        path.unlink()
        return size
    except FileNotFoundError:
        return 0
