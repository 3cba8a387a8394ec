"""The clip index: every object the store holds for us, with its owner and retention deadline."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from .db import Database


@dataclass(frozen=True)
class IndexedObject:
    key: str
    clip_id: str
    owner: str
    camera_hash: str
    kind: str  # clip | sidecar | feedback
    plan: str
    wall_end: str  # ISO-8601 UTC: retention counts from the end of the recording
    retain_until: float  # epoch seconds
    size: int
    sha256: str | None
    local_path: str | None
    uploaded: float


@dataclass(frozen=True)
class IndexSummary:
    objects: int
    next_deadline: float | None  # the earliest retain_until, None when the index is empty


@dataclass(frozen=True)
class OwnerPlan:
    """What the index holds for one owner, as far as plan changes care."""

    owner: str
    plan: str  # the plan of one of its objects (all of them when ``plans`` is 1)
    plans: int  # distinct plans among its objects
    earliest_wall_end: str
    earliest_retain_until: float


@dataclass(frozen=True)
class LocalCopy:
    """An uploaded object whose local file the hub still keeps (local retention)."""

    key: str
    path: Path
    uploaded: float


@dataclass(frozen=True)
class StoredClip:
    """One clip the store holds, as the hub's listing needs it: the clip object's row, its sidecar's key and the
    sidecar JSON that was uploaded beside it (kept in the outbox row, so reading it needs no round trip)."""

    clip_id: str
    owner: str
    camera_hash: str
    key: str  # the clip object's key
    sidecar_key: str | None
    wall_end: str  # ISO-8601 UTC
    retain_until: float
    size: int
    local_path: str | None  # a local copy kept under local retention, else None
    sidecar_body: str | None  # None: queued by a version that did not keep it (read the store's sidecar object)


_COLUMNS = ", ".join(f.name for f in fields(IndexedObject))
_PLACEHOLDERS = ", ".join("?" for _ in fields(IndexedObject))


def insert(conn: sqlite3.Connection, objects: Iterable[IndexedObject]) -> None:
    """Insert or replace rows inside the caller's transaction (e.g. the outbox's mark-done)."""
    conn.executemany(f"INSERT OR REPLACE INTO objects ({_COLUMNS}) VALUES ({_PLACEHOLDERS})",
                     [astuple(o) for o in objects])


def _rows(rows: list[sqlite3.Row]) -> list[IndexedObject]:
    return [IndexedObject(**dict(r)) for r in rows]


class ClipIndex:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str) -> IndexedObject | None:
        rows = _rows(self.db.query(f"SELECT {_COLUMNS} FROM objects WHERE key = ?", (key,)))
        return rows[0] if rows else None

    def due(self, now: float, limit: int = 1000) -> list[IndexedObject]:
        """Objects whose deadline has passed, most overdue first."""
        return _rows(self.db.query(
            f"SELECT {_COLUMNS} FROM objects WHERE retain_until <= ? ORDER BY retain_until LIMIT ?", (now, limit)))

    def for_owner(self, owner: str) -> list[IndexedObject]:
        return _rows(self.db.query(f"SELECT {_COLUMNS} FROM objects WHERE owner = ? ORDER BY key", (owner,)))

    def for_clip(self, clip_id: str) -> list[IndexedObject]:
        return _rows(self.db.query(f"SELECT {_COLUMNS} FROM objects WHERE clip_id = ? ORDER BY key", (clip_id,)))

    def list_clips(self, *, owner: str | None = None, camera_hashes: Iterable[str] | None = None,
                   clip_id: str | None = None, limit: int | None = None) -> list[StoredClip]:
        """Stored clips (kind ``clip``; not their sidecars), newest recording first, optionally of one owner,
        of some cameras (by hash) or one clip id, at most ``limit``."""
        where: list[str] = ["c.kind = 'clip'"]
        params: list[object] = []
        if owner is not None:
            where.append("c.owner = ?")
            params.append(owner)
        if camera_hashes is not None:
            hashes = list(camera_hashes)
            where.append(f"c.camera_hash IN ({', '.join('?' for _ in hashes)})")
            params += hashes
        if clip_id is not None:
            where.append("c.clip_id = ?")
            params.append(clip_id)
        # The page of clips is chosen first and only its rows are joined: joining every clip before the LIMIT
        # cost ~80 ms at 10,000 clips for a page of 50.
        page = f"SELECT * FROM objects c WHERE {' AND '.join(where)} ORDER BY c.wall_end DESC, c.clip_id DESC"
        if limit is not None:
            page += " LIMIT ?"
            params.append(limit)
        sql = ("SELECT c.clip_id, c.owner, c.camera_hash, c.key, s.key AS sidecar_key, c.wall_end, c.retain_until,"
               f" c.size, c.local_path, o.sidecar_body FROM ({page}) c"
               " LEFT JOIN objects s ON s.clip_id = c.clip_id AND s.kind = 'sidecar'"
               " LEFT JOIN outbox o ON o.clip_id = c.clip_id ORDER BY c.wall_end DESC, c.clip_id DESC")
        return [StoredClip(**dict(r)) for r in self.db.query(sql, tuple(params))]

    def count(self) -> int:
        return int(self.db.query("SELECT COUNT(*) FROM objects")[0][0])

    def get_summary(self) -> IndexSummary:
        row = self.db.query("SELECT COUNT(*), MIN(retain_until) FROM objects")[0]
        return IndexSummary(objects=int(row[0]), next_deadline=None if row[1] is None else float(row[1]))

    def list_owner_plans(self) -> list[OwnerPlan]:
        """One summary per owner with indexed objects, by owner."""
        rows = self.db.query("SELECT owner, plan, COUNT(DISTINCT plan), MIN(wall_end), MIN(retain_until)"
                             " FROM objects GROUP BY owner ORDER BY owner")  # fmt: skip
        return [OwnerPlan(r[0], r[1], int(r[2]), r[3], float(r[4])) for r in rows]

    def list_local_copies(self, *, uploaded_before: float | None = None) -> list[LocalCopy]:
        """Objects with a local copy, oldest upload first (the order space is taken back in)."""
        sql, params = "SELECT key, local_path, uploaded FROM objects WHERE local_path IS NOT NULL", []
        if uploaded_before is not None:
            sql, params = sql + " AND uploaded < ?", [uploaded_before]
        rows = self.db.query(sql + " ORDER BY uploaded, key", tuple(params))
        return [LocalCopy(r["key"], Path(r["local_path"]), float(r["uploaded"])) for r in rows]

    def forget_local_copy(self, key: str) -> None:
        """Record that the local copy of ``key`` is gone (the store copy stays indexed)."""
        with self.db.tx() as conn:
            conn.execute("UPDATE objects SET local_path = NULL WHERE key = ?", (key,))

    @staticmethod
    def delete(conn: sqlite3.Connection, keys: Iterable[str]) -> None:
        conn.executemany("DELETE FROM objects WHERE key = ?", [(k,) for k in keys])

    @staticmethod
    def delete_for_owner(conn: sqlite3.Connection, owner: str) -> int:
        """Inside the erasure's transaction: forget every object of ``owner``; returns how many rows."""
        return conn.execute("DELETE FROM objects WHERE owner = ?", (owner,)).rowcount
