"""The hub's side of model releases on disk and in SQLite: installed versions, the rollout state, its log.

Installed releases live in ``<models dir>/<name>/<version>/``: the signed release manifest and signature as
downloaded (``release.json``, ``release.json.sig``), the model file, and ``manifest.json``, the runtime entry
:meth:`AudioEventModel.from_manifest` loads (it checks the model's sha256 again on every load). A directory
appears only complete: it is assembled under a temporary name, fsynced and renamed.

The rollout state is one row per model name (which version is active, the previous one kept for rollback,
a candidate in shadow, the phase); every step is appended to ``model_log``; the events each version raised
(or, in shadow, would have raised) go to ``model_events`` so that flags can be held against them. The CLI
and the service share these tables: the CLI writes what it wants (a staged candidate, a rollback), the
service carries it out on its next tick.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from recorder.sidecar import fsync_dir
from uploader.db import Database

from .release import ReleaseManifest, is_version, parse_version

Phase = Literal["idle", "shadow", "watch"]
SCHEMA = """
CREATE TABLE IF NOT EXISTS model_rollout (   -- one row per model name: what runs, what is tried, what is kept
    name          TEXT PRIMARY KEY,
    active        TEXT,               -- installed version in use (NULL: the model shipped with edge-media)
    previous      TEXT,               -- what a rollback returns to (NULL: the shipped model)
    candidate     TEXT,               -- installed, smoke-tested, running in shadow
    phase         TEXT NOT NULL DEFAULT 'idle' CHECK (phase IN ('idle', 'shadow', 'watch')),
    phase_since   REAL,               -- epoch seconds
    request       TEXT,               -- asked by the CLI, done by the service: 'rollback'
    stats         TEXT NOT NULL DEFAULT '{}'   -- JSON: the shadow's or the watch's counters
);
CREATE TABLE IF NOT EXISTS model_versions (  -- every release this hub looked at, and what became of it
    name       TEXT NOT NULL,
    version    TEXT NOT NULL,
    status     TEXT NOT NULL,         -- installed, candidate, active, rejected, rolled_back, refused, retired
    reason     TEXT,
    updated    REAL NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS model_log (       -- append-only: every step, for `models status` and the API
    id       INTEGER PRIMARY KEY,
    time     REAL NOT NULL,
    name     TEXT NOT NULL,
    version  TEXT,
    step     TEXT NOT NULL,
    message  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS model_events (    -- audio events per model version: acted on (active) or not (shadow)
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    version      TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('active', 'shadow')),
    source_hash  TEXT NOT NULL,
    label        TEXT NOT NULL,
    start        REAL NOT NULL,       -- wall-clock epoch seconds
    end          REAL
);
CREATE INDEX IF NOT EXISTS model_events_version ON model_events (name, version, role, start);
"""
RELEASE_FILE, RELEASE_SIG = "release.json", "release.json.sig"
RUNTIME_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class RolloutState:
    name: str
    active: str | None = None
    previous: str | None = None
    candidate: str | None = None
    phase: Phase = "idle"
    phase_since: float | None = None
    request: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LogLine:
    time: float
    version: str | None
    step: str
    message: str


class RolloutStore:
    """Installed releases (files) and the rollout tables (SQLite, the hub's database)."""

    def __init__(self, db: Database, root: Path) -> None:
        self.db, self.root = db, Path(root)
        with db.tx() as conn:
            for statement in _statements(SCHEMA):  # executescript would commit the open transaction
                conn.execute(statement)

    # -- files ---------------------------------------------------------------------------------------

    def version_dir(self, name: str, version: str) -> Path:
        parse_version(version)  # a version is a path component: never anything but digits and dots
        return self.root / name / version

    def installed(self, name: str) -> list[str]:
        base = self.root / name
        if not base.is_dir():
            return []
        found = [p.name for p in base.iterdir() if p.is_dir() and (p / RUNTIME_MANIFEST).is_file()]
        return sorted((v for v in found if is_version(v)), key=parse_version)

    def staging_dir(self, name: str) -> Path:
        path = self.root / name / f".staging-{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        return path

    def commit_dir(self, staging: Path, manifest: ReleaseManifest, signed: bytes, signature: bytes) -> Path:
        """Write the release's files into ``staging`` (its model is already there), fsync, rename into place."""
        runtime = {"models": {manifest.name: manifest.runtime_entry()}}
        for fname, data in ((RELEASE_FILE, signed), (RELEASE_SIG, signature),
                            (RUNTIME_MANIFEST, (json.dumps(runtime, indent=2, sort_keys=True) + "\n").encode())):
            _write_synced(staging / fname, data)
        fsync_dir(staging)
        final = self.version_dir(manifest.name, manifest.version)
        if final.exists():  # a re-install of the same version: the new, verified copy wins
            shutil.rmtree(final)
        os.replace(staging, final)
        fsync_dir(final.parent)
        return final

    def discard(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def clean_staging(self, name: str) -> None:
        """Staging directories left by a crash mid-download."""
        base = self.root / name
        for stale in base.glob(".staging-*") if base.is_dir() else ():
            shutil.rmtree(stale, ignore_errors=True)

    def release_manifest(self, name: str, version: str) -> ReleaseManifest | None:
        path = self.version_dir(name, version) / RELEASE_FILE
        try:
            return ReleaseManifest.model_validate_json(path.read_bytes())
        except (OSError, ValueError):
            return None

    def prune(self, name: str, keep: int, protected: Iterable[str | None]) -> list[str]:
        """Delete the oldest installed versions beyond ``keep``, never one in ``protected``."""
        safe = {v for v in protected if v}
        versions = self.installed(name)
        removed = []
        for version in versions[: max(0, len(versions) - keep)]:
            if version not in safe:
                shutil.rmtree(self.version_dir(name, version), ignore_errors=True)
                removed.append(version)
        return removed

    # -- state ---------------------------------------------------------------------------------------

    def state(self, name: str) -> RolloutState:
        rows = self.db.query("SELECT * FROM model_rollout WHERE name = ?", (name,))
        if not rows:
            return RolloutState(name)
        row = rows[0]
        return RolloutState(name=name, active=row["active"], previous=row["previous"], candidate=row["candidate"],
                            phase=row["phase"], phase_since=row["phase_since"], request=row["request"],
                            stats=json.loads(row["stats"] or "{}"))

    def save(self, conn: sqlite3.Connection, state: RolloutState) -> None:
        conn.execute("INSERT OR REPLACE INTO model_rollout (name, active, previous, candidate, phase, phase_since,"
                     " request, stats) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (state.name, state.active, state.previous, state.candidate, state.phase, state.phase_since,
                      state.request, json.dumps(state.stats, sort_keys=True)))

    def update(self, name: str, step: str, message: str, *, version: str | None = None,
               status: str | None = None, **changes: Any) -> RolloutState:
        """Change the state, record a version's status and log the step, in one transaction."""
        with self.db.tx() as conn:
            state = self.state(name)
            if changes:
                state = replace(state, **changes)
                self.save(conn, state)
            if status is not None and version is not None:
                self.set_status(conn, name, version, status, message)
            self.log(conn, name, version, step, message)
        return state

    def set_stats(self, name: str, stats: dict[str, Any]) -> None:
        """Progress counters of a phase: kept for ``models status``, not logged."""
        with self.db.tx() as conn:
            conn.execute("UPDATE model_rollout SET stats = ? WHERE name = ?", (json.dumps(stats, sort_keys=True), name))

    @staticmethod
    def set_status(conn: sqlite3.Connection, name: str, version: str, status: str, reason: str | None) -> None:
        conn.execute("INSERT OR REPLACE INTO model_versions (name, version, status, reason, updated)"
                     " VALUES (?, ?, ?, ?, ?)", (name, version, status, reason, time.time()))

    def statuses(self, name: str) -> dict[str, tuple[str, str | None]]:
        rows = self.db.query("SELECT version, status, reason FROM model_versions WHERE name = ?", (name,))
        return {r["version"]: (r["status"], r["reason"]) for r in rows}

    @staticmethod
    def log(conn: sqlite3.Connection, name: str, version: str | None, step: str, message: str) -> None:
        conn.execute("INSERT INTO model_log (time, name, version, step, message) VALUES (?, ?, ?, ?, ?)",
                     (time.time(), name, version, step, message))

    def log_lines(self, name: str, limit: int = 50) -> list[LogLine]:
        rows = self.db.query("SELECT time, version, step, message FROM model_log WHERE name = ?"
                             " ORDER BY id DESC LIMIT ?", (name, limit))
        return [LogLine(r["time"], r["version"], r["step"], r["message"]) for r in reversed(rows)]

    # -- events ----------------------------------------------------------------------------------------

    def add_event(self, name: str, version: str, role: str, source_hash: str, label: str, start: float,
                  end: float | None = None) -> None:
        with self.db.tx() as conn:
            conn.execute("INSERT INTO model_events (name, version, role, source_hash, label, start, end)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", (name, version, role, source_hash, label, start, end))

    def end_event(self, name: str, role: str, source_hash: str, label: str, start: float, end: float) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE model_events SET end = ? WHERE name = ? AND role = ? AND source_hash = ?"
                         " AND label = ? AND abs(start - ?) < 0.01 AND end IS NULL",
                         (end, name, role, source_hash, label, start))

    @staticmethod
    def delete_events(conn: sqlite3.Connection, source_hashes: Iterable[str]) -> int:
        """An owner's erasure: the event ledger's rows of their sources (when events happened at home)."""
        hashes = list(source_hashes)
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'model_events'").fetchone()
        if not exists or not hashes:
            return 0
        marks = ", ".join("?" * len(hashes))
        return conn.execute(f"DELETE FROM model_events WHERE source_hash IN ({marks})", hashes).rowcount

    def prune_events(self, before: float) -> int:
        """Rows older than any shadow or watch window can look back: they decide nothing any more."""
        with self.db.tx() as conn:
            return conn.execute("DELETE FROM model_events WHERE start < ?", (before,)).rowcount

    def events(self, name: str, version: str, role: str, since: float | None = None) -> list[sqlite3.Row]:
        return self.db.query("SELECT source_hash, label, start, end FROM model_events WHERE name = ? AND version = ?"
                             " AND role = ? AND start >= ? ORDER BY start",
                             (name, version, role, since if since is not None else 0.0))


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def state_dict(state: RolloutState) -> dict[str, Any]:
    return asdict(state)
