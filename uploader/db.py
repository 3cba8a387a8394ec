"""The uploader's durable state: one SQLite file (WAL), one schema, written in transactions.

Outbox, clip index and audit log share a database so that "uploaded" and "indexed" (or "erased" and
"forgotten") commit in one transaction: a crash leaves either both or neither. Other packages may keep their
own tables in the same file (the privacy package's restrictions), created by their own code; nobody outside
this package writes the tables below. ``synchronous=NORMAL`` (WAL): a process crash loses nothing; a power cut
may lose the last commits, and the design makes that harmless — a lost "enqueued" is re-found in the spool at
start-up, a lost "done" is retried and the worker's stat-before-put finds the object already there. FULL cost
an fsync per commit, which measured as a third of the outbox's time per clip.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 2  # 2: outbox.sidecar_body, erasures; restrictions moved to edge_media.privacy

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id            INTEGER PRIMARY KEY,
    clip_id       TEXT NOT NULL UNIQUE,
    owner         TEXT NOT NULL,
    camera_hash   TEXT NOT NULL,
    kind          TEXT NOT NULL DEFAULT 'clip',
    clip_path     TEXT NOT NULL,           -- local files (spool/ready)
    sidecar_path  TEXT NOT NULL,
    clip_key      TEXT NOT NULL,           -- deterministic object keys: retries are idempotent
    sidecar_key   TEXT NOT NULL,
    tags          TEXT NOT NULL,           -- JSON object
    plan          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    wall_end      TEXT NOT NULL,           -- ISO-8601 UTC; retention counts from here
    retain_until  REAL NOT NULL,           -- epoch seconds
    sidecar_body  TEXT,                    -- what is uploaded at sidecar_key (NULL: the file at sidecar_path)
    state         TEXT NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'inflight', 'done', 'failed', 'dropped')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  REAL NOT NULL DEFAULT 0,
    last_error    TEXT,
    created       REAL NOT NULL,
    updated       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_ready ON outbox (state, next_attempt);

CREATE TABLE IF NOT EXISTS objects (       -- the clip index: what the store holds, and until when
    key           TEXT PRIMARY KEY,
    clip_id       TEXT NOT NULL,
    owner         TEXT NOT NULL,
    camera_hash   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    plan          TEXT NOT NULL,
    wall_end      TEXT NOT NULL,
    retain_until  REAL NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT,
    local_path    TEXT,                    -- a local copy kept under local retention, else NULL
    uploaded      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_due ON objects (retain_until);
CREATE INDEX IF NOT EXISTS objects_owner ON objects (owner);
CREATE INDEX IF NOT EXISTS objects_clip ON objects (clip_id);

CREATE TABLE IF NOT EXISTS audit (         -- append-only: every deletion, erasure, export, re-tag
    id            INTEGER PRIMARY KEY,
    at            REAL NOT NULL,
    action        TEXT NOT NULL,
    key           TEXT,
    owner         TEXT,
    deadline      REAL,
    detail        TEXT
);

CREATE TABLE IF NOT EXISTS erasures (      -- owners being erased: the worker claims none of their uploads
    id            INTEGER PRIMARY KEY,
    owner         TEXT NOT NULL,
    since         REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS erasures_owner ON erasures (owner);
"""


class Database:
    """A shared connection guarded by a lock; use :meth:`tx` for every read-modify-write."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10.0)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(SCHEMA)
        self._migrate()
        self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _migrate(self) -> None:
        """Bring a version-1 file up to date (CREATE ... IF NOT EXISTS adds new tables, not new columns)."""
        columns = {r["name"] for r in self._conn.execute("PRAGMA table_info(outbox)")}
        if "sidecar_body" not in columns:
            self._conn.execute("ALTER TABLE outbox ADD COLUMN sidecar_body TEXT")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction (writers never deadlock on lock upgrades); rolls back on error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def change_count(self) -> tuple[int, int]:
        """Changes so far, for a reader's cache: rows written through this connection, and the file's
        ``data_version`` (which moves when another process commits). Equal counts: nothing was written."""
        with self._lock:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            return (self._conn.total_changes, int(version))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
