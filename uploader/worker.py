"""The upload worker: takes due items from the outbox, puts clip + sidecar into the store, marks them done.

Idempotence comes from deterministic keys plus a ``stat_object`` before every PUT: an object the store already
holds with the same size and sha256 (or md5 ETag) is not sent again. That is the recovery for a crash between
the PUT and the outbox commit, and makes every retry harmless. Errors split three ways: retryable (connection,
5xx, BadDigest) -> the item backs off with full jitter and, since a down store fails every item alike, the
whole worker holds off too (one probe per backoff step, not one per queued clip); permanent and about the
store (credentials, bucket) -> the item is parked ``failed``, one error line is logged and the worker pauses
for the backoff cap; permanent and about one item (a bad key or tag) -> only that item is parked.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .index import IndexedObject
from .outbox import Outbox, OutboxItem
from .s3_store import is_permanent
from .store import (
    INVALID_ARGUMENT,
    INVALID_KEY,
    INVALID_TAG,
    KEY_CONFLICT,
    NO_SUCH_KEY,
    ObjectInfo,
    ObjectStore,
    StoreError,
)

log = logging.getLogger(__name__)

IDLE_POLL_S = 5.0  # safety net for a missed wake() (rows enqueued by another process, a clock jump)
MIN_WAIT_S = 0.01  # floor on every sleep: a clock that stands still must not turn the loop into a spin
DEFAULT_DRAIN_TIMEOUT_S = 10.0
CHUNK = 1024 * 1024
LOCAL_FILE_MISSING = "local file missing"
# Permanent errors caused by one item's own input: parking that item is enough, the store itself is fine.
ITEM_ERROR_CODES = frozenset(
    {INVALID_KEY, INVALID_TAG, INVALID_ARGUMENT, KEY_CONFLICT, "KeyTooLongError", "MetadataTooLarge", "EntityTooLarge"}
)
_CONTENT_TYPES = {".mp4": "video/mp4", ".mkv": "video/x-matroska", ".json": "application/json", ".m4a": "audio/mp4",
                  ".wav": "audio/wav"}


@dataclass(frozen=True)
class _Part:
    """One object of an item: the clip or its sidecar."""

    key: str
    path: Path  # the local file, deleted after the upload
    kind: str
    size: int | None  # known for the clip (the recorder hashed it); the sidecar is hashed on demand
    sha256: str | None
    body: bytes | None = None  # uploaded instead of the file's bytes (the producer's redacted sidecar)


class _LocalFileMissing(Exception):
    """The spool file is gone and the store does not hold the object: nothing left to upload."""


class UploadWorker:
    """``start()``/``stop()`` run :meth:`run_once` in a thread; tests and benchmarks may call it directly."""

    def __init__(
        self, store: ObjectStore, outbox: Outbox, *, clock: Callable[[], float] = time.time,
        keep_local: bool = False, backoff_initial_s: float = 2.0, backoff_cap_s: float = 600.0,
        rng: random.Random | None = None, idle_poll_s: float = IDLE_POLL_S,
    ) -> None:  # fmt: skip
        if backoff_initial_s <= 0 or backoff_cap_s < backoff_initial_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_cap_s")
        self.store, self.outbox, self.clock, self.keep_local = store, outbox, clock, keep_local
        self.backoff_initial_s, self.backoff_cap_s = backoff_initial_s, backoff_cap_s
        self.rng = rng if rng is not None else random.Random()
        self.idle_poll_s = idle_poll_s
        self.uploaded = 0  # items done (clip + sidecar each)
        self.failed_retryable = 0  # store errors worth retrying (outages, timeouts): attempts, not items
        self.failed_permanent = 0  # store errors that park the item (credentials, bucket, rejected object)
        self.iterations = 0  # loop turns: lets tests prove the loop never spins
        self.last_error: StoreError | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by wake() and stop(): cuts an idle wait short
        self._thread: threading.Thread | None = None
        self._hold_until = 0.0  # clock time before which the loop does not touch the store
        self._failures = 0  # consecutive retryable failures: the current outage's length
        self._outage_since: float | None = None  # clock time of the outage's first failure
        self._blocked = False  # paused on a permanent store error (credentials, bucket)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="upload-worker", daemon=True)
        self._thread.start()

    def stop(self, drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S) -> bool:
        """Stop after the item in hand (an upload is not cut off mid-way); True if the thread ended within
        ``drain_timeout_s``. An item still in flight after that is recovered at the next start-up."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(drain_timeout_s)
        if thread.is_alive():
            log.warning("upload worker still busy after %.1f s; its item is recovered at next start", drain_timeout_s)
            return False
        return True

    def wake(self) -> None:
        """An item was enqueued: end an idle wait now. A backoff or pause is not cut short (the store would
        fail this item like the others)."""
        self._wake.set()

    @property
    def paused(self) -> bool:
        """True while the worker holds off the store after an error (outage backoff or permanent-error pause)."""
        return self.clock() < self._hold_until

    @property
    def store_down(self) -> bool:
        """The store failed twice in a row (an outage, not a blip) or refused us for good: waiting for
        the queue to empty (at shutdown) would not help."""
        return self._failures >= 2 or (self._blocked and self.paused)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.iterations += 1
            self._wake.clear()  # before looking for work: a wake() from here on ends the wait below
            try:
                held = self._hold_until - self.clock()
                if held > 0:
                    self._wait(held)
                elif not self.run_once():
                    self._wait(self._idle_wait())
            except Exception:  # the outbox's database failing (disk full): log, keep the thread, try later
                log.exception("upload worker error; retrying in %.0f s", self.idle_poll_s)
                self._stop.wait(self.idle_poll_s)

    def _wait(self, seconds: float) -> None:
        self._wake.wait(max(MIN_WAIT_S, seconds))

    def _idle_wait(self) -> float:
        due = self.outbox.next_due()
        if due is None:
            return self.idle_poll_s
        return min(self.idle_poll_s, due - self.clock())

    # -- one item -----------------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Process one due item, if any; True if there was one (whatever became of it)."""
        item = self.outbox.claim()
        if item is None:
            return False
        try:
            self._process(item)
        except StoreError as err:
            self._on_store_error(item, err)
        except _LocalFileMissing as missing:
            # An erasure that gave up waiting for this upload deletes the row and the files: not a failure.
            if not self.outbox.mark_failed(item, f"{LOCAL_FILE_MISSING}: {missing}"):
                self._take_back(item)
                return True
            log.error("clip %s: %s (%s) and not in the store; parked as failed", item.clip_id,
                      LOCAL_FILE_MISSING, missing)  # fmt: skip
        except OSError as err:  # reading the spool failed (I/O error, file removed mid-read): try again later
            if not self.outbox.mark_retry(item, f"local read failed: {err}", self._item_delay(item.attempts)):
                self._take_back(item)
                return True
            log.warning("clip %s: local read failed (%s); will retry", item.clip_id, err)
        return True

    def _take_back(self, item: OutboxItem) -> None:
        """The owner's erasure removed the row while we uploaded: remove whatever of it we put."""
        log.info("clip %s was erased during its upload; removing its objects", item.clip_id)
        errors = self.store.remove_objects([item.clip_key, item.sidecar_key])
        if errors:  # the erasure's own re-listing of the owner's prefixes is the backstop
            log.warning("clip %s: could not remove %d objects after its erasure: %s", item.clip_id, len(errors),
                        errors[0])  # fmt: skip

    def _process(self, item: OutboxItem) -> None:
        body = item.sidecar_body.encode("utf-8") if item.sidecar_body is not None else None
        parts = (
            _Part(item.clip_key, item.clip_path, item.kind, item.size, item.sha256),
            _Part(item.sidecar_key, item.sidecar_path, "sidecar", None, None, body),
        )
        objects = [self._ensure_uploaded(item, part) for part in parts]
        if not self.outbox.mark_done(item, objects):
            self._take_back(item)
            return
        if not self.keep_local:
            for part in parts:
                part.path.unlink(missing_ok=True)
        self.uploaded += 1
        self._store_ok()
        self._remove_dropped()

    def _remove_dropped(self) -> None:
        """A clip the spool quota dropped after a failed attempt may have left its clip object in the store (the
        clip went up, then the sidecar failed): remove such leftovers while the store answers, so a dropped clip
        is gone everywhere, as its audit entry says. Best effort: a failure is retried after the next upload."""
        items = self.outbox.dropped_after_attempts()
        if not items:
            return
        try:
            errors = self.store.remove_objects([k for i in items for k in (i.clip_key, i.sidecar_key)])
        except StoreError as err:
            log.debug("removing leftovers of %d dropped clips failed: %s", len(items), err)
            return
        if errors:
            log.debug("removing leftovers of dropped clips failed for %d objects: %s", len(errors), errors[0])
            return
        self.outbox.forget_attempts([i.clip_id for i in items])

    def _ensure_uploaded(self, item: OutboxItem, part: _Part) -> IndexedObject:
        """The object at ``part.key`` holding the local file's bytes: found by stat, else PUT."""
        try:
            # Keys are deterministic per clip, so on a first attempt nothing of ours can be there yet;
            # the stat (a round trip per object) is only needed when an earlier attempt may have put it
            # (or the local file is gone and the store is the only place left to look).
            local_exists = part.body is not None or part.path.exists()
            maybe_there = item.attempts > 1 or not local_exists
            stored = self._stat(part.key) if maybe_there else None
            if not local_exists:
                if stored is None:
                    raise _LocalFileMissing(str(part.path))
                info, local = stored, None  # uploaded by an earlier try that crashed after deleting the file
            elif stored is not None and _same_bytes(stored, part):
                info, local = stored, part.path
            else:
                info, local = self._put(item, part), part.path
        except StoreError as err:
            if err.key is None:  # bucket-level errors carry no key; say which object we were on
                raise StoreError(err.code, err.message, key=part.key) from None
            raise
        return IndexedObject(
            key=part.key, clip_id=item.clip_id, owner=item.owner, camera_hash=item.camera_hash, kind=part.kind,
            plan=item.plan, wall_end=item.wall_end, retain_until=item.retain_until, size=info.size,
            sha256=info.sha256 or part.sha256, local_path=str(local) if self.keep_local and local else None,
            uploaded=self.clock(),
        )  # fmt: skip

    def _stat(self, key: str) -> ObjectInfo | None:
        try:
            return self.store.stat_object(key)
        except StoreError as err:
            if err.code == NO_SUCH_KEY:
                return None
            raise

    def _put(self, item: OutboxItem, part: _Part) -> ObjectInfo:
        content_type = _CONTENT_TYPES.get(part.path.suffix.lower(), "application/octet-stream")
        meta = {"clip-id": item.clip_id}
        if part.body is not None:
            info = self.store.put_bytes(part.key, part.body, content_type=content_type, metadata=meta, tags=item.tags)
        else:
            info = self.store.put_object(part.key, part.path, content_type=content_type, metadata=meta,
                                         tags=item.tags)  # fmt: skip
        if part.sha256 is not None and info.sha256 is not None and info.sha256 != part.sha256:
            # The store verified what we sent; what we sent is not what the recorder wrote (disk trouble).
            log.warning("clip %s: spool file changed since it was recorded (sha256 differs)", item.clip_id)
        return info

    # -- errors and backoff ---------------------------------------------------------------------------

    def _on_store_error(self, item: OutboxItem, err: StoreError) -> None:
        self.last_error = err
        if is_permanent(err):
            self.failed_permanent += 1
            self.outbox.mark_failed(item, str(err))
            if err.code in ITEM_ERROR_CODES:
                log.error("clip %s rejected by the store: %s; parked as failed", item.clip_id, err)
                return
            self._hold_until = self.clock() + self.backoff_cap_s
            self._blocked = True
            log.error("upload failed permanently: %s; clip %s parked as failed, uploads paused for %.0f s "
                      "(fix the storage settings; failed clips are retried at the next start)",
                      err, item.clip_id, self.backoff_cap_s)  # fmt: skip
            return
        self.outbox.mark_retry(item, str(err), self._item_delay(item.attempts))
        self.failed_retryable += 1
        self._failures += 1
        if self._outage_since is None:  # one line per outage, however many attempts it takes
            self._outage_since = self.clock()
            log.warning("store unreachable (%s: %s); holding %d clips, retrying with backoff", err.code, err.message,
                        self._held())  # the store's state, not one item's: no key
        else:
            log.debug("upload of clip %s failed again: %s", item.clip_id, err)
        # Equal jitter with a floor: the worker must hold off for a real interval, never ~0 s.
        ceiling = self._ceiling(self._failures)
        self._hold_until = self.clock() + self.rng.uniform(ceiling / 2, ceiling)

    def _store_ok(self) -> None:
        if self._outage_since is not None:
            log.info("store reachable again after %.0f s (%d failed attempts); uploading %d held clips",
                     self.clock() - self._outage_since, self._failures, self._held())
        self._failures, self._outage_since, self._blocked = 0, None, False
        self.last_error = None

    def _held(self) -> int:
        """Clips waiting for the store (this one included)."""
        counts = self.outbox.counts()
        return counts["pending"] + counts["inflight"]

    def _item_delay(self, attempts: int) -> float:
        """Full jitter: uniform in [0, min(cap, initial * 2^(attempts-1))]."""
        return self.rng.uniform(0.0, self._ceiling(attempts))

    def _ceiling(self, n: int) -> float:
        return min(self.backoff_cap_s, self.backoff_initial_s * 2.0 ** min(max(n, 1) - 1, 62))


def _same_bytes(stored: ObjectInfo, part: _Part) -> bool:
    """Does the store already hold exactly the local file? sha256 when the store recorded it, else the
    single-part ETag (md5). Sizes are compared first: it is free and rules out most differences."""
    if part.body is not None:
        if stored.size != len(part.body):
            return False
        if stored.sha256 is not None:
            return stored.sha256 == hashlib.sha256(part.body).hexdigest()
        return stored.etag == hashlib.md5(part.body).hexdigest()
    size = part.size if part.size is not None else part.path.stat().st_size
    if stored.size != size:
        return False
    if stored.sha256 is not None:
        return stored.sha256 == (part.sha256 or _file_hash(part.path, "sha256"))
    return stored.etag == _file_hash(part.path, "md5")


def _file_hash(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as src:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
