"""Append-only audit log (in the uploader database): deletions, erasures, exports, re-tags, drops,
restrictions and refusals. Every ``action`` written anywhere is listed on :class:`AuditEntry`."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass

from .db import Database


@dataclass(frozen=True)
class AuditEntry:
    at: float
    # delete | reconcile-delete | lost (sweeper; lost: indexed, but the store no longer had it)
    # | erase | export | restrict | unrestrict (owner rights)
    # | retag (plan change) | drop (drop-oldest quota) | refuse (stop-recording quota: a clip not
    # started or cut short, of a camera or microphone named by hash in ``detail``)
    action: str
    key: str | None
    owner: str | None
    deadline: float | None
    detail: str | None


def record(conn: sqlite3.Connection, action: str, *, key: str | None = None, owner: str | None = None,
           deadline: float | None = None, detail: str | None = None, at: float | None = None) -> None:
    """Write one entry inside the caller's transaction (so it commits with what it describes)."""
    conn.execute(
        "INSERT INTO audit (at, action, key, owner, deadline, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (time.time() if at is None else at, action, key, owner, deadline, detail),
    )


def entries(db: Database, *, action: str | None = None, owner: str | None = None) -> list[AuditEntry]:
    sql, params = "SELECT at, action, key, owner, deadline, detail FROM audit WHERE 1=1", list[str]()
    if action is not None:
        sql, params = sql + " AND action = ?", [*params, action]
    if owner is not None:
        sql, params = sql + " AND owner = ?", [*params, owner]
    return [AuditEntry(**dict(r)) for r in db.query(sql + " ORDER BY id", tuple(params))]


def delete_for_owner(conn: sqlite3.Connection, owner: str, *, key_prefixes: Iterable[str] = ()) -> int:
    """Erasure, inside its transaction: forget the entries that name ``owner`` or a key under one of
    ``key_prefixes`` (its cameras), so that no trace of what was erased remains. Returns how many."""
    removed = conn.execute("DELETE FROM audit WHERE owner = ?", (owner,)).rowcount
    for prefix in key_prefixes:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        removed += conn.execute("DELETE FROM audit WHERE key LIKE ? ESCAPE '\\'", (f"{escaped}%",)).rowcount
    return removed
