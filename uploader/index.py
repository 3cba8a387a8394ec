"""The clip index: every object the store holds for us, with its owner and retention deadline."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields

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

    def count(self) -> int:
        return int(self.db.query("SELECT COUNT(*) FROM objects")[0][0])

    @staticmethod
    def delete(conn: sqlite3.Connection, keys: Iterable[str]) -> None:
        conn.executemany("DELETE FROM objects WHERE key = ?", [(k,) for k in keys])
