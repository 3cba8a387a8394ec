"""Camera restrictions: the owner's standing order that a camera records nothing new.

Owned here, in its own table of the hub's database (the uploader's file, but not the uploader's schema):
a restriction is an owner's right, not upload state, so erasing the recordings leaves it in force. Writes
take the caller's connection so that a restriction commits with the audit line that records it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from uploader.db import Database

TABLE = "privacy_restrictions"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (  -- cameras whose new clips are neither kept nor uploaded
    camera_hash   TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    since         REAL NOT NULL
)
"""
# Until schema 2 the rows lived in the uploader's schema under this name; moved once, on first open.
_LEGACY_TABLE = "restrictions"


@dataclass(frozen=True)
class Restriction:
    camera_hash: str
    owner: str
    since: float  # epoch seconds


class Restrictions:
    """The repository; creating it creates (and, from an older file, migrates) its table."""

    def __init__(self, db: Database) -> None:
        self.db = db
        with db.tx() as conn:
            conn.execute(SCHEMA)
            legacy = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                  (_LEGACY_TABLE,)).fetchone()  # fmt: skip
            if legacy is not None:
                conn.execute(f"INSERT OR IGNORE INTO {TABLE} (camera_hash, owner, since)"
                             f" SELECT camera_hash, owner, since FROM {_LEGACY_TABLE}")  # fmt: skip
                conn.execute(f"DROP TABLE {_LEGACY_TABLE}")

    @staticmethod
    def add(conn: sqlite3.Connection, restriction: Restriction) -> None:
        """Restrict (again: the newest ``since`` wins) inside the caller's transaction."""
        conn.execute(f"INSERT OR REPLACE INTO {TABLE} (camera_hash, owner, since) VALUES (?, ?, ?)",
                     (restriction.camera_hash, restriction.owner, restriction.since))  # fmt: skip

    @staticmethod
    def remove(conn: sqlite3.Connection, camera_hash: str) -> bool:
        """Lift a restriction inside the caller's transaction; False when there was none."""
        return conn.execute(f"DELETE FROM {TABLE} WHERE camera_hash = ?", (camera_hash,)).rowcount == 1

    def list_restrictions(self) -> list[Restriction]:
        rows = self.db.query(f"SELECT camera_hash, owner, since FROM {TABLE} ORDER BY camera_hash")
        return [Restriction(r["camera_hash"], r["owner"], float(r["since"])) for r in rows]

    def restricted_hashes(self) -> set[str]:
        return {r.camera_hash for r in self.list_restrictions()}
