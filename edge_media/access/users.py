"""The ``users`` table: name, role, owner id or cameras, the token's sha256, created, revoked.

Revocation keeps the row (who had access, and until when, stays answerable) and makes the token useless at
once: every request reads the table, so a ``users revoke`` from another process takes effect on the next call.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from uploader.db import Database

from ..errors import UsageError
from .principal import Principal
from .tokens import hash_token, new_token, same_hash

TABLE = "users"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (  -- API users; the token itself is never stored
    name         TEXT PRIMARY KEY,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'viewer')),
    owner        TEXT,                -- role owner: the owner id they act for
    cameras      TEXT NOT NULL,       -- role viewer: JSON list of source names
    token_hash   TEXT NOT NULL UNIQUE, -- sha256 hex of the token
    created      REAL NOT NULL,
    revoked_at   REAL
)
"""
ROLES = ("owner", "viewer")
Role = Literal["owner", "viewer"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class UserError(UsageError):
    """A user that cannot be added or revoked as asked (nothing was written)."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    owner: str | None
    cameras: tuple[str, ...]
    created: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def principal(self) -> Principal:
        return Principal(self.name, self.role, self.owner, self.cameras)


class UserStore:
    """The repository; creating it creates its table."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db, self.clock = db, clock
        with db.tx() as conn:
            conn.execute(SCHEMA)

    def add(self, name: str, role: str, *, owner: str | None = None,
            cameras: Collection[str] = ()) -> tuple[User, str]:
        """Add a user; returns it and its token (the only time the token exists outside the caller)."""
        if not _NAME.match(name):
            raise UserError(f"user name {name!r}: use 1-64 letters, digits, _ . @ - (starting with a letter or digit)")
        if role not in ROLES:
            raise UserError(f"--role: {role!r} is not a role (roles: {', '.join(ROLES)})")
        if role == "owner" and cameras:
            raise UserError("--cameras is for viewers: an owner sees every source of their owner id")
        if role == "viewer" and (owner is not None or not cameras):
            raise UserError("a viewer needs --cameras (the sources they may see) and no --owner")
        token = new_token()
        user = User(name, role, (owner or name) if role == "owner" else None,  # type: ignore[arg-type]
                    tuple(sorted(set(cameras))), self.clock(), None)
        try:
            with self.db.tx() as conn:
                conn.execute(f"INSERT INTO {TABLE} (name, role, owner, cameras, token_hash, created)"
                             " VALUES (?, ?, ?, ?, ?, ?)",
                             (user.name, user.role, user.owner, json.dumps(list(user.cameras)), hash_token(token),
                              user.created))  # fmt: skip
        except sqlite3.IntegrityError:
            raise UserError(f"user {name!r} exists already (revoked users keep their name)") from None
        return user, token

    def revoke(self, name: str) -> User:
        """Revoke ``name``'s token (a user revoked before stays revoked since then: the wish already holds)."""
        with self.db.tx() as conn:
            conn.execute(f"UPDATE {TABLE} SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                         (self.clock(), name))  # fmt: skip
        user = self.get(name)
        if user is None:
            raise UserError(f"no user {name!r} (see: edge-media users list)")
        return user

    def get(self, name: str) -> User | None:
        rows = self.db.query(f"SELECT * FROM {TABLE} WHERE name = ?", (name,))
        return _user(rows[0]) if rows else None

    def list_users(self) -> list[User]:
        return [_user(r) for r in self.db.query(f"SELECT * FROM {TABLE} ORDER BY name")]

    def authenticate(self, token: str) -> User | None:
        """The active user whose token this is, else None (unknown or revoked)."""
        digest = hash_token(token)
        rows = self.db.query(f"SELECT * FROM {TABLE} WHERE token_hash = ?", (digest,))
        if not rows or not same_hash(rows[0]["token_hash"], digest):
            return None
        user = _user(rows[0])
        return user if user.active else None

    def stored_hashes(self) -> list[str]:
        """Every stored token hash (for tests and audits: proves no token is kept)."""
        return [r["token_hash"] for r in self.db.query(f"SELECT token_hash FROM {TABLE}")]


def _user(row: sqlite3.Row) -> User:
    return User(row["name"], row["role"], row["owner"], tuple(json.loads(row["cameras"])), float(row["created"]),
                None if row["revoked_at"] is None else float(row["revoked_at"]))
