"""Retention sweeper: deletes every object whose deadline passed — from the store, the index and any local copy.

The clip index is the prompt path: ``sweep()`` takes what is due, removes it from the store in batches (one
``remove_objects`` call per batch), and only then forgets it. ``reconcile()`` is the slow path for objects the
index lost (a restored backup, a crash between upload and index): it lists the bucket and dates objects by their
``retain-until`` tag; the same listing finds the reverse, indexed objects the store lost (a server that lost its
data), which are forgotten with an audit entry so that nobody is offered a clip that is gone. ``retag_plan()``
re-dates an owner's objects after a plan change; the next sweep deletes whatever became overdue. Every deletion
and re-tag is written to the audit log in the transaction that records it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from . import audit
from .db import Database
from .index import ClipIndex, IndexedObject
from .retention import (
    PLAN_TAG,
    deadline_tags,
    epoch,
    from_epoch,
    parse_utc,
    retain_until,
    tag_deadline,
)
from .store import NO_SUCH_KEY, ObjectStore, StoreError, validate_tags

log = logging.getLogger(__name__)
T = TypeVar("T")

LOCAL_DELETE_ERROR = "LocalDeleteError"  # the store copy is gone but the local copy could not be removed
MAX_LOGGED_KEYS = 50  # per sweep: enough to act on, bounded when a whole bucket misbehaves
PENDING_STATES = ("pending", "inflight", "failed")  # outbox rows whose object is not (yet) in the store
_NEVER = threading.Event()  # direct sweep()/reconcile() calls run to the end; only the worker is interruptible


@dataclass(frozen=True)
class SweepReport:
    deleted: int  # objects removed from the store (and the index, for sweep())
    failed: tuple[tuple[str, str], ...]  # (key, error code); these stay indexed and are retried next sweep
    local_deleted: int  # local copies removed
    duration_s: float
    undated: tuple[str, ...] = ()  # reconcile(): unindexed objects without a valid retain-until tag (kept)
    lost: tuple[str, ...] = ()  # reconcile(): indexed objects the store no longer has (forgotten, audited)


@dataclass(frozen=True)
class _Candidate:
    key: str
    owner: str | None
    deadline: float
    plan: str | None


class RetentionSweeper:
    """``start()`` runs ``sweep()`` every ``interval_s`` (and ``reconcile()`` on the first pass and every
    ``reconcile_every`` passes after; 0 disables it) in a thread that survives store errors."""

    def __init__(
        self, store: ObjectStore, db: Database, *, clock: Callable[[], float] = time.time, batch: int = 1000,
        interval_s: float = 60.0, reconcile_every: int = 60, reconcile_prefix: str = "clips/",
    ) -> None:  # fmt: skip
        if batch < 1 or interval_s <= 0 or reconcile_every < 0:
            raise ValueError("batch >= 1, interval_s > 0 and reconcile_every >= 0 are required")
        self.store, self.db, self.batch, self.interval_s = store, db, batch, interval_s
        self.reconcile_every, self.reconcile_prefix = reconcile_every, reconcile_prefix
        self._clock = clock
        self._index = ClipIndex(db)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_sweep: SweepReport | None = None
        self.last_reconcile: SweepReport | None = None
        self.deleted_total = 0  # objects deleted by sweeps since start (for metrics)
        self.reconcile_deleted_total = 0  # unindexed objects deleted by reconcile since start
        self.lost_total = 0  # indexed objects reconcile found missing from the store since start

    # -- the index path -------------------------------------------------------------------------

    def sweep(self) -> SweepReport:
        """Delete every indexed object due at the clock's current time. A failure of a whole request (server
        down) raises StoreError; batches finished before it stay done."""
        return self._sweep(_NEVER)

    def _sweep(self, interrupt: threading.Event) -> SweepReport:
        started, now = time.monotonic(), self._clock()
        failed: dict[str, str] = {}
        deleted = local_deleted = 0
        while not interrupt.is_set():  # stop() should not wait for a 100,000-object backlog
            # Failed keys are the most overdue and stay indexed: ask for that many more and skip them.
            due = [o for o in self._index.due(now, self.batch + len(failed)) if o.key not in failed][: self.batch]
            if not due:
                break
            gone, removed_local, errors = self._delete_batch(due)
            deleted, local_deleted = deleted + gone, local_deleted + removed_local
            self.deleted_total += gone  # per batch: a sweep cut short by a store error still counts what it did
            failed.update(errors)
        _log_failures(failed, "stay indexed and are retried next sweep")
        report = SweepReport(deleted, tuple(failed.items()), local_deleted, time.monotonic() - started)
        if report.deleted:
            log.info("retention sweep deleted %d objects (%d local copies) in %.2f s",
                     report.deleted, report.local_deleted, report.duration_s)  # fmt: skip
        self.last_sweep = report
        return report

    def _delete_batch(self, due: Sequence[IndexedObject]) -> tuple[int, int, dict[str, str]]:
        errors = _errors_by_key(self.store.remove_objects([o.key for o in due]), [o.key for o in due])
        removed = [o for o in due if o.key not in errors]
        local_deleted = 0
        done: list[IndexedObject] = []
        # Local copies go before the index rows: a crash in between leaves a row that the next sweep finishes
        # (removing a missing object is not an error), never a local recording nobody tracks any more.
        for obj in removed:
            try:
                local_deleted += _remove_local(obj.local_path)
                done.append(obj)
            except OSError as exc:
                errors[obj.key] = LOCAL_DELETE_ERROR
                log.debug("cannot remove local copy of %s: %s", obj.key, exc)
        at = self._clock()
        with self.db.tx() as conn:  # row and audit entry commit together: no deletion goes unrecorded
            ClipIndex.delete(conn, [o.key for o in done])
            for obj in done:
                audit.record(conn, "delete", key=obj.key, owner=obj.owner, deadline=obj.retain_until,
                             detail=f"plan={obj.plan}", at=at)  # fmt: skip
        return len(done), local_deleted, errors

    # -- the bucket path ------------------------------------------------------------------------

    def reconcile(self, prefix: str = "clips/") -> SweepReport:
        """Delete unindexed objects under ``prefix`` whose ``retain-until`` tag has passed. Objects without a
        valid tag are reported (logged, in ``undated``), never deleted: we cannot tell what was promised."""
        return self._reconcile(prefix, _NEVER)

    def _reconcile(self, prefix: str, interrupt: threading.Event) -> SweepReport:
        started, now = time.monotonic(), self._clock()
        failed: dict[str, str] = {}
        undated: list[str] = []
        listed: set[str] = set()
        deleted = 0
        for chunk in _chunks(self._unindexed_due(prefix, now, undated, listed, interrupt), self.batch):
            errors = _errors_by_key(self.store.remove_objects([c.key for c in chunk]), [c.key for c in chunk])
            gone = [c for c in chunk if c.key not in errors]
            at = self._clock()
            with self.db.tx() as conn:
                for c in gone:
                    audit.record(conn, "reconcile-delete", key=c.key, owner=c.owner, deadline=c.deadline,
                                 detail=f"not in index; plan={c.plan}", at=at)  # fmt: skip
            deleted += len(gone)
            self.reconcile_deleted_total += len(gone)
            failed.update(errors)
        _log_failures(failed, "could not be deleted by reconcile")
        if undated:
            log.warning("reconcile: %d unindexed objects under %r have no valid retain-until tag and were kept: %s",
                        len(undated), prefix, ", ".join(undated[:MAX_LOGGED_KEYS]))  # fmt: skip
        lost = () if interrupt.is_set() else self._forget_lost(prefix, listed, uploaded_before=now)
        report = SweepReport(deleted, tuple(failed.items()), 0, time.monotonic() - started, tuple(undated), lost)
        self.last_reconcile = report
        return report

    def _forget_lost(self, prefix: str, listed: set[str], *, uploaded_before: float) -> tuple[str, ...]:
        """Indexed objects under ``prefix`` that a whole listing did not show (uploaded before it began): the store
        lost them. Their rows go, with an audit entry each, unless a local copy still needs its retention."""
        rows = self.db.query("SELECT key, owner, retain_until, local_path FROM objects WHERE key >= ? AND "
                                    "key < ? AND uploaded < ?", (prefix, prefix + "\uffff", uploaded_before))
        lost = [r for r in rows if r["key"] not in listed]
        if not lost:
            return ()
        at = self._clock()
        with self.db.tx() as conn:  # rows an erasure removed meanwhile are simply gone already
            ClipIndex.delete(conn, [r["key"] for r in lost if r["local_path"] is None])
            for r in lost:
                audit.record(conn, "lost", key=r["key"], owner=r["owner"], deadline=r["retain_until"],
                             detail="indexed, not in the store" + (" (local copy kept)" if r["local_path"] else ""),
                             at=at)  # fmt: skip
        self.lost_total += len(lost)
        keys = [r["key"] for r in lost]
        log.error("reconcile: the store lost %d indexed objects under %r (forgotten, audited as 'lost'): %s",
                  len(keys), prefix, ", ".join(keys[:MAX_LOGGED_KEYS]))  # fmt: skip
        return tuple(keys)

    def _unindexed_due(self, prefix: str, now: float, undated: list[str], listed: set[str],
                       interrupt: threading.Event) -> Iterator[_Candidate]:  # fmt: skip
        # Tags are read only for objects the index does not know: a listing carries no tags, and one
        # GetObjectTagging per indexed object would make every reconcile as slow as the bucket is large.
        for info in self.store.list_objects(prefix):
            if interrupt.is_set():
                return
            listed.add(info.key)
            if self._index.get(info.key) is not None:
                continue
            try:
                tags = self.store.get_tags(info.key)
            except StoreError as exc:
                if exc.code == NO_SUCH_KEY:
                    continue  # deleted since the listing
                raise
            deadline = tag_deadline(tags)
            if deadline is None:
                undated.append(info.key)
            elif epoch(deadline) <= now:
                yield _Candidate(info.key, None, epoch(deadline), tags.get(PLAN_TAG))

    # -- the worker -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="retention-sweeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        passes = 0
        while not self._stop.is_set():
            self._guarded("sweep", lambda: self._sweep(self._stop))
            # Reconcile on the first pass too: a lost index is most likely found right after a restart.
            if self.reconcile_every and passes % self.reconcile_every == 0 and not self._stop.is_set():
                self._guarded("reconcile", lambda: self._reconcile(self.reconcile_prefix, self._stop))
            passes += 1
            if self._stop.wait(self.interval_s):
                break

    def _guarded(self, what: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except StoreError as exc:  # server down, credentials revoked: try again next interval
            log.warning("retention %s failed (%s); retrying in %.0f s", what, exc, self.interval_s)
        except Exception:
            log.exception("retention %s failed unexpectedly; retrying in %.0f s", what, self.interval_s)


# -- plan change ------------------------------------------------------------------------------------


def retag_plan(store: ObjectStore, db: Database, *, owner: str, plan: str, days: int,
               clock: Callable[[], float] = time.time, batch: int = 500) -> int:  # fmt: skip
    """Move ``owner`` to ``plan`` (``days`` of retention): re-date and re-tag every indexed object and every
    not-yet-uploaded outbox row. Returns the number of indexed objects re-tagged. Idempotent: after a
    StoreError part-way (earlier batches are committed), call it again. Objects whose new deadline has
    already passed are left to the next sweep, which deletes and audits them like any other."""
    validate_tags({PLAN_TAG: plan})  # fail before changing anything, not half-way through
    retain_until(from_epoch(clock()), days)
    # The outbox first, so clips uploaded while we work already carry the new plan.
    _retag_outbox(db, owner=owner, plan=plan, days=days, clock=clock)
    count = 0
    for chunk in _chunks(iter(ClipIndex(db).for_owner(owner)), batch):
        # The store first, then the index: the database records only what the store already holds.
        deadlines = [_retag_object(store, obj, plan, days) for obj in chunk]
        at = clock()
        with db.tx() as conn:
            conn.executemany("UPDATE objects SET plan = ?, retain_until = ? WHERE key = ?",
                             [(plan, d, o.key) for o, d in zip(chunk, deadlines)])  # fmt: skip
            for obj, deadline in zip(chunk, deadlines):
                audit.record(conn, "retag", key=obj.key, owner=owner, deadline=deadline,
                             detail=f"plan {obj.plan} -> {plan} ({days} d)", at=at)  # fmt: skip
        count += len(chunk)
    log.info("re-tagged %d objects of an owner to plan %s (%d days)", count, plan, days)
    return count


def _retag_object(store: ObjectStore, obj: IndexedObject, plan: str, days: int) -> float:
    try:
        tags = store.get_tags(obj.key)
        store.set_tags(obj.key, deadline_tags(tags, obj.wall_end, plan, days))
    except StoreError as exc:
        if exc.code != NO_SUCH_KEY:
            raise
        # Already gone from the store: still re-date the row, and the next sweep forgets it.
        log.warning("re-tag: %s is indexed but not in the store", obj.key)
    return epoch(retain_until(parse_utc(obj.wall_end), days))


def _retag_outbox(db: Database, *, owner: str, plan: str, days: int, clock: Callable[[], float]) -> int:
    marks = ", ".join("?" for _ in PENDING_STATES)
    with db.tx() as conn:
        rows = conn.execute(f"SELECT id, wall_end, tags FROM outbox WHERE owner = ? AND state IN ({marks})",
                            (owner, *PENDING_STATES)).fetchall()  # fmt: skip
        now = clock()
        updates = []
        for row in rows:
            tags = deadline_tags(json.loads(row["tags"]), row["wall_end"], plan, days)
            deadline = epoch(retain_until(parse_utc(row["wall_end"]), days))
            updates.append((plan, deadline, json.dumps(tags, sort_keys=True), now, row["id"]))
        conn.executemany("UPDATE outbox SET plan = ?, retain_until = ?, tags = ?, updated = ? WHERE id = ?", updates)
        if updates:
            audit.record(conn, "retag", owner=owner, detail=f"{len(updates)} outbox rows -> plan {plan} ({days} d)",
                         at=now)  # fmt: skip
    return len(rows)


# -- helpers ----------------------------------------------------------------------------------------


def _errors_by_key(errors: list[StoreError], keys: Sequence[str]) -> dict[str, str]:
    out = {e.key: e.code for e in errors if e.key is not None}
    if any(e.key is None for e in errors):
        # We cannot tell which object failed, so we claim none was deleted: a row kept too long is retried,
        # a row dropped for an object still in the store would be a recording kept forever.
        code = next(e.code for e in errors if e.key is None)
        out.update({k: out.get(k, code) for k in keys})
    return out


def _remove_local(path: str | None) -> int:
    if not path:
        return 0
    try:
        os.unlink(path)
    except FileNotFoundError:
        return 0
    return 1


def _chunks(items: Iterator[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _log_failures(failed: dict[str, str], what: str) -> None:
    if not failed:
        return
    shown = ", ".join(f"{key} ({code})" for key, code in list(failed.items())[:MAX_LOGGED_KEYS])
    more = f" and {len(failed) - MAX_LOGGED_KEYS} more" if len(failed) > MAX_LOGGED_KEYS else ""
    log.warning("retention: %d objects %s: %s%s", len(failed), what, shown, more)
