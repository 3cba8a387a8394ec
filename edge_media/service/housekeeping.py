"""Spool quota and local retention: the hub's disk never fills, and nothing is kept past its time.

Over quota, space is taken back in order of least harm: local copies of clips already safe in the
store go first, then (``drop-oldest``) the oldest clips still waiting for upload — each drop is
audited and logged — or (``stop-recording``) new clips are refused until the spool drains — each
refusal is audited and logged too.

Clips being written count: the recorder asks :meth:`SpoolQuota.make_room` before each new fragment
of an open clip (and before opening one), with the bytes it may add; if the policy cannot make that
room, the clip ends there (or does not start). So the quota holds while a clip grows, not only
once it is queued. Room granted is held for its source until it asks again or its clip ends
(:meth:`SpoolQuota.release`): cameras recording at once cannot each be promised the same free bytes.

The quota is also bounded by the disk: the spool never takes the last :func:`disk_reserve` bytes of its file
system. A full disk would otherwise stop SQLite (the outbox could not even mark an upload started, so nothing
would ever be uploaded to free it) and every other writer on the hub; the fault suite's disk-full test showed it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from recorder import Spool
from uploader import audit
from uploader.db import Database
from uploader.index import ClipIndex
from uploader.outbox import Outbox

log = logging.getLogger(__name__)

RESUME_FRACTION = 0.9  # stop-recording resumes below 90 % of the quota (no flapping at the edge)
MIB = 1 << 20


def disk_reserve(fs_bytes: int) -> int:
    """Bytes of the spool's file system the spool leaves free for SQLite, the feedback spool and logs: 5 % of it,
    at least 4 MiB (a small card still has room for the databases' journals) and at most 256 MiB."""
    return min(max(fs_bytes // 20, 4 * MIB), 256 * MIB)


class SpoolQuota:
    def __init__(self, spool: Spool, outbox: Outbox, db: Database, *, quota_bytes: int, policy: str) -> None:
        self.spool, self.outbox, self.db = spool, outbox, db
        self.quota, self.policy = quota_bytes, policy
        self.recording_allowed = True
        self.dropped = 0
        self.refused = 0  # clips refused or cut short for lack of room
        self._lock = threading.Lock()  # reader threads of every camera call in
        self._granted: dict[str, int] = {}  # room promised to each source's open clip, not on disk yet

    def admit(self, *, owner: str, source: str, source_hash: str) -> bool:
        """May ``source`` open a new clip? Under ``stop-recording`` while over quota: no, audited once
        per refused clip. Re-measures first: uploads free space without telling us."""
        if not self.recording_allowed:
            self.enforce()
        if self.recording_allowed:
            return True
        self._refuse(owner, source, source_hash, "new clip refused")
        return False

    def make_room(self, nbytes: int, *, owner: str, source: str, source_hash: str) -> bool:
        """An open (or opening) clip of ``source`` is about to add up to ``nbytes``: True when the spool
        has, or the policy frees, that room beside the room other sources' open clips hold; False (audited)
        when the clip must end or not start. A grant replaces the source's previous one: by its next request,
        what the previous one covered is on disk or part of the new request."""
        with self._lock:
            self._granted.pop(source, None)
            usage, limit = self._measure()
            if usage + nbytes > limit:
                self._enforce(extra=nbytes)
                usage, limit = self._measure()
            if usage + nbytes <= limit:
                self._granted[source] = nbytes
                return True
            if self.recording_allowed and self.policy == "stop-recording":
                self._stop_recording(usage + nbytes, limit)
        self._refuse(owner, source, source_hash, "clip ended or not started: no room left")
        return False

    def release(self, source: str) -> None:
        """``source``'s clip ended: the room it held is on disk now (counted there), or was never used."""
        with self._lock:
            self._granted.pop(source, None)

    def _measure(self) -> tuple[int, int]:
        """(usage, limit) from one scan of the spool (it runs per fragment of every recording camera): usage is
        the spool's bytes plus the room open clips hold; limit is the quota, or less when the disk holds less."""
        on_disk = self.spool.usage_bytes()
        usage = on_disk + sum(self._granted.values())
        try:
            st = os.statvfs(self.spool.root)
        except OSError:
            return usage, self.quota
        room = on_disk + st.f_bavail * st.f_frsize - disk_reserve(st.f_blocks * st.f_frsize)
        return usage, min(self.quota, max(room, 0))

    def _refuse(self, owner: str, source: str, source_hash: str, what: str) -> None:
        self.refused += 1
        detail = f"spool over quota ({self.policy}): {what}"
        with self.db.tx() as conn:  # the audit names the source (camera or microphone) by hash, like every other entry
            audit.record(conn, "refuse", owner=owner, detail=f"{detail} (source {source_hash})")
        log.debug("%s: %s", source, detail)  # the camera pipeline / recorder log it in their words

    def enforce(self) -> None:
        """After a clip is queued, and at start-up: bring the spool back under its quota."""
        with self._lock:
            self._enforce()

    def _enforce(self, extra: int = 0) -> None:
        usage, limit = self._measure()
        usage += extra
        if usage <= limit:
            if not self.recording_allowed and usage < limit * RESUME_FRACTION:
                self.recording_allowed = True
                log.warning("spool below quota again (%d bytes); recording resumes", usage)
            return
        usage = self._evict_local_copies(usage, limit)
        if usage <= limit:
            return
        if self.policy == "drop-oldest":
            self._drop_oldest(usage, limit)
        elif self.recording_allowed:
            self._stop_recording(usage, limit)

    def _stop_recording(self, usage: int, limit: int) -> None:
        self.recording_allowed = False
        log.error("spool over quota (%d of %d bytes%s) and policy is stop-recording: "
                  "no new clips until uploads catch up", usage, *self._quota_text(limit))

    def _quota_text(self, limit: int) -> tuple[int, str]:
        return limit, ("" if limit >= self.quota else "; the disk is nearly full")

    def _evict_local_copies(self, usage: int, limit: int) -> int:
        index = ClipIndex(self.db)
        for copy in index.list_local_copies():
            if usage <= limit:
                break
            usage -= _forget_local_copy(index, copy.key, copy.path)
        return usage

    def _drop_oldest(self, usage: int, limit: int) -> None:
        freed, count = 0, 0
        for item in self.outbox.pending():
            if usage - freed <= limit:
                break
            if self.outbox.drop(item.clip_id, "spool over quota (drop-oldest)") is None:
                continue  # being uploaded right now: it frees itself
            freed += _unlink(item.clip_path) + _unlink(item.sidecar_path)
            count += 1
        self.dropped += count
        log.warning("spool over quota (%d of %d bytes%s): dropped the %d oldest unsent clips (%d bytes)",
                    usage, *self._quota_text(limit), count, freed)


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
