"""The durable outbox: finished clips waiting for the object store, one SQLite row per clip.

States: ``pending`` (waiting, maybe until ``next_attempt``) -> ``inflight`` (claimed by the worker) -> ``done``
(uploaded and indexed, in one transaction), or back to ``pending`` after a retryable error, or ``failed`` after a
permanent one (parked until the next start-up, when the configuration may have been fixed). ``dropped`` is the
spool quota's eviction. Every transition is one IMMEDIATE transaction, so a crash leaves a row in exactly one
state; a row left ``inflight`` by a crash is put back by :meth:`Outbox.recover` and re-uploading it is harmless
because object keys are deterministic and the worker skips objects the store already holds.

An owner's erasure and the worker exclude each other per owner: :meth:`Outbox.begin_erasure` writes a marker
that :meth:`Outbox.claim` checks in its own transaction, so once it commits no upload of that owner starts;
the erasure then waits until :meth:`Outbox.count_inflight` is 0 before it lists what to delete.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType

from . import audit, index
from .db import Database
from .index import IndexedObject

STATES = ("pending", "inflight", "done", "failed", "dropped")
# What the service may still upload (and must still count against the spool quota).
OPEN_STATES = ("pending", "inflight", "failed")
MAX_ERROR_CHARS = 500  # last_error is for people reading a status page, not a log archive
# An erasure marker older than this is one whose process died: it no longer holds uploads back.
ERASURE_LEASE_S = 3600.0


@dataclass(frozen=True)
class OutboxItem:
    """One finished clip (its file and JSON sidecar) and where it goes. ``sidecar_body``, when set, is what is
    uploaded at ``sidecar_key`` instead of the local sidecar file (the producer's redacted copy: the local file
    may name things that must not leave the hub). The last four fields are filled when an item is read back
    from the database; callers enqueue with the defaults."""

    clip_id: str
    owner: str
    camera_hash: str
    clip_path: Path
    sidecar_path: Path
    clip_key: str
    sidecar_key: str
    tags: Mapping[str, str]
    plan: str
    size: int  # of the clip file, as the recorder wrote it
    sha256: str  # hex, of the clip file
    wall_end: str  # ISO-8601 UTC
    retain_until: float  # epoch seconds
    kind: str = "clip"
    sidecar_body: str | None = None
    id: int | None = None
    state: str = "pending"
    attempts: int = 0
    last_error: str | None = None


# Columns that map one-to-one onto OutboxItem fields (everything but the bookkeeping the item does not carry).
_ITEM_COLUMNS = ", ".join(f.name for f in fields(OutboxItem))


def _item(row: sqlite3.Row) -> OutboxItem:
    values = dict(row)
    values["clip_path"] = Path(values["clip_path"])
    values["sidecar_path"] = Path(values["sidecar_path"])
    values["tags"] = MappingProxyType(json.loads(values["tags"]))
    return OutboxItem(**values)


class Outbox:
    """Thread-safe through :class:`Database`'s lock; ``clock`` stamps rows and decides what is due."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    # -- the producer's side --------------------------------------------------------------------

    def enqueue(self, item: OutboxItem) -> bool:
        """Queue a clip exactly once: False (and nothing changes) when its clip id is already known, in any
        state, so a start-up rescan of the spool can enqueue everything it finds."""
        now = self.clock()
        with self.db.tx() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO outbox (clip_id, owner, camera_hash, kind, clip_path, sidecar_path,"
                " clip_key, sidecar_key, tags, plan, size, sha256, wall_end, retain_until, sidecar_body, state,"
                " attempts, next_attempt, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " 'pending', 0, 0, ?, ?)",
                (item.clip_id, item.owner, item.camera_hash, item.kind, str(item.clip_path),
                 str(item.sidecar_path), item.clip_key, item.sidecar_key, json.dumps(dict(item.tags), sort_keys=True),
                 item.plan, item.size, item.sha256, item.wall_end, item.retain_until, item.sidecar_body, now, now),
            )  # fmt: skip
            return cursor.rowcount == 1

    def drop(self, clip_id: str, reason: str) -> OutboxItem | None:
        """Spool-quota eviction: mark a waiting clip ``dropped`` and audit it; returns it (so the caller deletes
        its files) or None when it is unknown or not droppable. An ``inflight`` clip is not dropped: the worker
        is reading its files and will free the space itself in a moment."""
        with self.db.tx() as conn:
            row = conn.execute(f"SELECT {_ITEM_COLUMNS} FROM outbox WHERE clip_id = ?", (clip_id,)).fetchone()
            if row is None or row["state"] not in ("pending", "failed"):
                return None
            now = self.clock()
            conn.execute("UPDATE outbox SET state = 'dropped', last_error = ?, updated = ? WHERE id = ?",
                         (reason[:MAX_ERROR_CHARS], now, row["id"]))  # fmt: skip
            audit.record(conn, "drop", key=row["clip_key"], owner=row["owner"], deadline=row["retain_until"],
                         detail=reason, at=now)  # fmt: skip
        return _item(row)

    def dropped_after_attempts(self, limit: int = 100) -> list[OutboxItem]:
        """Clips dropped after an upload attempt: part of them may be in the store (the clip went up, the sidecar
        failed). A dropped row's ``attempts`` is reset once the worker removed what it may have put."""
        rows = self.db.query(f"SELECT {_ITEM_COLUMNS} FROM outbox WHERE state = 'dropped' AND attempts > 0"
                             " ORDER BY id LIMIT ?", (limit,))  # fmt: skip
        return [_item(r) for r in rows]

    def forget_attempts(self, clip_ids: Sequence[str]) -> None:
        """Nothing of these dropped clips is in the store any more (see :meth:`dropped_after_attempts`)."""
        marks = ", ".join("?" for _ in clip_ids)
        with self.db.tx() as conn:
            conn.execute(f"UPDATE outbox SET attempts = 0, updated = ? WHERE state = 'dropped'"
                         f" AND clip_id IN ({marks})", (self.clock(), *clip_ids))  # fmt: skip

    def set_sidecar_body(self, clip_id: str, body: str) -> bool:
        """Give a row queued without one the sidecar body to upload (a row queued before the field existed).
        Only rows not uploaded yet change; False when none did."""
        marks = ", ".join("?" for _ in OPEN_STATES)
        with self.db.tx() as conn:
            cursor = conn.execute(f"UPDATE outbox SET sidecar_body = ?, updated = ? WHERE clip_id = ?"
                                  f" AND state IN ({marks})", (body, self.clock(), clip_id, *OPEN_STATES))  # fmt: skip
            return cursor.rowcount == 1

    # -- the worker's side ----------------------------------------------------------------------

    def claim(self) -> OutboxItem | None:
        """Take the due ``pending`` item that has waited longest (earliest ``next_attempt``, then oldest) and
        mark it ``inflight``. Ordering by due time first means an item that keeps failing goes behind items
        never tried, so one bad clip cannot hold the head of the queue. Items of an owner being erased are
        not claimed (checked in this transaction, so no upload starts after the erasure's marker commits)."""
        with self.db.tx() as conn:
            now = self.clock()
            row = conn.execute(
                f"SELECT {_ITEM_COLUMNS} FROM outbox o WHERE state = 'pending' AND next_attempt <= ?"
                " AND NOT EXISTS (SELECT 1 FROM erasures e WHERE e.owner = o.owner AND e.since > ?)"
                " ORDER BY next_attempt, id LIMIT 1", (now, now - ERASURE_LEASE_S),
            ).fetchone()  # fmt: skip
            if row is None:
                return None
            conn.execute("UPDATE outbox SET state = 'inflight', attempts = attempts + 1, updated = ? WHERE id = ?",
                         (self.clock(), row["id"]))  # fmt: skip
        claimed = _item(row)
        return replace(claimed, state="inflight", attempts=claimed.attempts + 1)

    def mark_done(self, item: OutboxItem, objects: Sequence[IndexedObject]) -> bool:
        """Mark uploaded and index the objects in ONE transaction: a crash leaves both or neither. Returns False
        (and indexes nothing) when the row is no longer ``inflight`` — the owner's erasure removed it while it
        was uploading — so the caller removes what it just put instead of resurrecting erased data."""
        with self.db.tx() as conn:
            cursor = conn.execute(
                "UPDATE outbox SET state = 'done', last_error = NULL, updated = ?"
                " WHERE clip_id = ? AND state = 'inflight'",
                (self.clock(), item.clip_id),
            )  # fmt: skip
            if cursor.rowcount != 1:
                return False
            index.insert(conn, objects)
        return True

    def mark_retry(self, item: OutboxItem, error: str, delay_s: float) -> bool:
        """Back to ``pending``, due again after ``delay_s`` (the worker's backoff). False when the row is no
        longer ``inflight`` (erased meanwhile): nothing changes."""
        now = self.clock()
        return self._transition(item, "pending", error, next_attempt=now + max(0.0, delay_s))

    def mark_failed(self, item: OutboxItem, error: str) -> bool:
        """Park after a permanent error; :meth:`recover` at the next start-up gives it another chance. False
        when the row is no longer ``inflight`` (erased meanwhile): nothing changes."""
        return self._transition(item, "failed", error, next_attempt=0.0)

    def _transition(self, item: OutboxItem, state: str, error: str, *, next_attempt: float) -> bool:
        # Only from inflight: a row erased or dropped meanwhile stays as it is.
        with self.db.tx() as conn:
            cursor = conn.execute(
                "UPDATE outbox SET state = ?, last_error = ?, next_attempt = ?, updated = ?"
                " WHERE clip_id = ? AND state = 'inflight'",
                (state, error[:MAX_ERROR_CHARS], next_attempt, self.clock(), item.clip_id),
            )  # fmt: skip
            return cursor.rowcount == 1

    def recover(self) -> int:
        """Start-up: rows left ``inflight`` by a crash and rows parked ``failed`` (the configuration may have
        been fixed since) become ``pending`` and due now. Returns how many rows changed."""
        with self.db.tx() as conn:
            cursor = conn.execute(
                "UPDATE outbox SET state = 'pending', next_attempt = 0, updated = ?"
                " WHERE state IN ('inflight', 'failed')",
                (self.clock(),),
            )  # fmt: skip
            return cursor.rowcount

    # -- erasure ----------------------------------------------------------------------------------

    def begin_erasure(self, owner: str) -> int:
        """Hold back every upload of ``owner`` from now on (see :meth:`claim`); returns the marker's id for
        :meth:`end_erasure`. Uploads already ``inflight`` go on: wait for :meth:`count_inflight` to reach 0."""
        with self.db.tx() as conn:
            cursor = conn.execute("INSERT INTO erasures (owner, since) VALUES (?, ?)", (owner, self.clock()))
            return int(cursor.lastrowid or 0)

    def end_erasure(self, marker: int) -> None:
        """Remove one marker; the owner's uploads resume unless another erasure of it is running."""
        with self.db.tx() as conn:
            conn.execute("DELETE FROM erasures WHERE id = ?", (marker,))

    def count_inflight(self, *, owner: str | None = None) -> int:
        """Rows being uploaded right now (of ``owner``, when given)."""
        sql, params = "SELECT COUNT(*) FROM outbox WHERE state = 'inflight'", []
        if owner is not None:
            sql, params = sql + " AND owner = ?", [owner]
        return int(self.db.query(sql, tuple(params))[0][0])

    @staticmethod
    def delete_for_owner(conn: sqlite3.Connection, owner: str) -> list[OutboxItem]:
        """Inside the erasure's transaction: remove every row of ``owner`` (any state) and return them, so the
        caller can delete their local files once the transaction commits."""
        rows = conn.execute(f"SELECT {_ITEM_COLUMNS} FROM outbox WHERE owner = ? ORDER BY id", (owner,)).fetchall()
        conn.execute("DELETE FROM outbox WHERE owner = ?", (owner,))
        return [_item(r) for r in rows]

    # -- reads ------------------------------------------------------------------------------------

    def get(self, clip_id: str) -> OutboxItem | None:
        rows = self.db.query(f"SELECT {_ITEM_COLUMNS} FROM outbox WHERE clip_id = ?", (clip_id,))
        return _item(rows[0]) if rows else None

    def counts(self) -> dict[str, int]:
        """Rows per state, every state present (zero when empty)."""
        counted = {r[0]: int(r[1]) for r in self.db.query("SELECT state, COUNT(*) FROM outbox GROUP BY state")}
        return {state: counted.get(state, 0) for state in STATES}

    def pending(self) -> list[OutboxItem]:
        """Everything not yet uploaded nor dropped (pending, inflight, failed), oldest first: what still
        occupies the spool, in eviction order."""
        marks = ", ".join("?" for _ in OPEN_STATES)
        rows = self.db.query(f"SELECT {_ITEM_COLUMNS} FROM outbox WHERE state IN ({marks}) ORDER BY id", OPEN_STATES)
        return [_item(r) for r in rows]

    def next_due(self) -> float | None:
        """The earliest ``next_attempt`` of a ``pending`` item (the worker sleeps until then), None if none."""
        value = self.db.query("SELECT MIN(next_attempt) FROM outbox WHERE state = 'pending'")[0][0]
        return None if value is None else float(value)
