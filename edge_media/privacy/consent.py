"""The consent ledger: who agreed to which notice, for which purpose, when, and when they withdrew.

Owned here, in its own table of the hub's database (the uploader's file, not the uploader's schema). The
ledger is append-only, enforced by SQLite triggers that abort any UPDATE or DELETE: a grant is never edited
into a withdrawal, a withdrawal is a new row that names the grant it ends. Every question — "may this owner's
audio be sent for this purpose now?" — is answered from the rows by one pure function, ``decide``.

Erasure does NOT remove ledger rows, and nothing else may: the controller must be able to show that consent
was given for what was sent (GDPR Art. 7(1)) and when it was withdrawn, which is also what retracting the
samples already sent relies on; keeping that proof is an Art. 17(3)(b)/(e) exception to erasure. The rows hold
the owner id, purpose, notice version and hash, method, actor and times — never a recording or a camera name.

Only the owner grants or withdraws (the API passes its authenticated user as ``actor``), and withdrawing takes
exactly what granting takes: one call, the same arguments.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from uploader.db import Database

from ..errors import UsageError
from .notices import NoticeBook, Purpose

TABLE = "privacy_consent"
_PURPOSES = ", ".join(f"'{p.value}'" for p in Purpose)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (        -- append-only: one row per grant or withdrawal
    seq             INTEGER PRIMARY KEY,    -- append order
    consent_id      TEXT NOT NULL UNIQUE,   -- uuid4; a withdrawal has its own and names the grant it ends
    owner           TEXT NOT NULL,
    purpose         TEXT NOT NULL CHECK (purpose IN ({_PURPOSES})),
    action          TEXT NOT NULL CHECK (action IN ('grant', 'withdraw')),
    notice_version  INTEGER,                -- grant: the notice shown, and the sha256 of its exact text
    notice_sha256   TEXT,
    method          TEXT NOT NULL CHECK (method IN ('cli', 'api')),
    actor           TEXT NOT NULL,
    at              REAL NOT NULL,          -- epoch seconds, UTC
    withdraws       TEXT REFERENCES {TABLE} (consent_id),
    CHECK ((action = 'grant' AND notice_version IS NOT NULL AND notice_sha256 IS NOT NULL AND withdraws IS NULL)
        OR (action = 'withdraw' AND withdraws IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS {TABLE}_owner ON {TABLE} (owner, purpose, seq);
CREATE TRIGGER IF NOT EXISTS {TABLE}_no_update BEFORE UPDATE ON {TABLE}
BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE}
BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END;
"""
_COLUMNS = "seq, consent_id, owner, purpose, action, notice_version, notice_sha256, method, actor, at, withdraws"

Action = Literal["grant", "withdraw"]
Method = Literal["cli", "api"]
Reason = Literal["granted", "never-granted", "withdrawn", "notice-superseded"]


class NotTheOwner(UsageError):
    """Someone other than the owner tried to grant or withdraw the owner's consent (nothing was written)."""


@dataclass(frozen=True)
class ConsentRecord:
    """One ledger row."""

    seq: int
    consent_id: str
    owner: str
    purpose: Purpose
    action: Action
    notice_version: int | None
    notice_sha256: str | None
    method: Method
    actor: str
    at: float
    withdraws: str | None

    def to_json(self) -> dict:
        return {"consent_id": self.consent_id, "owner": self.owner, "purpose": self.purpose.value,
                "action": self.action, "notice_version": self.notice_version, "notice_sha256": self.notice_sha256,
                "method": self.method, "actor": self.actor, "at": iso_utc(self.at), "withdraws": self.withdraws}


@dataclass(frozen=True)
class ConsentState:
    """The answer to "may ``owner``'s data be used for ``purpose`` at ``at``?". Truthy only when it may."""

    owner: str
    purpose: Purpose
    at: float
    reason: Reason
    grant: ConsentRecord | None  # the latest grant not withdrawn by ``at`` (in force only if reason is granted)
    min_version: int  # the oldest notice version whose grants still count at ``at``

    @property
    def allowed(self) -> bool:
        return self.reason == "granted"

    @property
    def consent_id(self) -> str | None:
        """The grant a disclosure made now happens under (None when nothing may be sent)."""
        return self.grant.consent_id if self.allowed and self.grant is not None else None

    def __bool__(self) -> bool:
        return self.allowed

    def describe(self) -> str:
        g = self.grant
        if self.reason == "granted" and g is not None:
            return f"granted under notice v{g.notice_version} since {iso_utc(g.at)} (consent id {g.consent_id})"
        if self.reason == "notice-superseded" and g is not None:
            return (f"not in force: granted under notice v{g.notice_version}, which no longer counts "
                    f"(notice v{self.min_version} requires consent again)")
        return "withdrawn" if self.reason == "withdrawn" else "never granted"

    def to_json(self) -> dict:
        return {"purpose": self.purpose.value, "allowed": self.allowed, "reason": self.reason,
                "consent_id": self.consent_id, "notice_version": self.grant.notice_version if self.grant else None,
                "at": iso_utc(self.at)}


@dataclass(frozen=True)
class ConsentChange:
    """What a grant or withdrawal did: ``recorded`` False when the ledger already said so (nothing written)."""

    record: ConsentRecord
    recorded: bool


def decide(records: Sequence[ConsentRecord], *, owner: str, purpose: Purpose, at: float,
           min_version: int) -> ConsentState:  # fmt: skip
    """The consent check, pure: ``records`` are the ledger rows of (owner, purpose) in append order. Consent is
    in force at ``at`` when the last row at or before ``at`` is a grant whose notice version still counts."""
    past = [r for r in records if r.at <= at]
    last = past[-1] if past else None
    if last is None:
        return ConsentState(owner, purpose, at, "never-granted", None, min_version)
    if last.action == "withdraw":
        return ConsentState(owner, purpose, at, "withdrawn", None, min_version)
    version = last.notice_version or 0
    return ConsentState(owner, purpose, at, "granted" if version >= min_version else "notice-superseded",
                        last, min_version)  # fmt: skip


class ConsentLedger:
    """The repository; creating it creates its table and the triggers that keep it append-only."""

    def __init__(self, db: Database, *, notices: NoticeBook | None = None,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.db, self.clock = db, clock
        self.notices = notices if notices is not None else NoticeBook.packaged()
        with db.tx() as conn:
            for statement in _statements(SCHEMA):
                conn.execute(statement)

    # -- writes -----------------------------------------------------------------------------------

    def grant(self, owner: str, purpose: Purpose, *, actor: str, method: Method,
              notice_version: int | None = None) -> ConsentChange:  # fmt: skip
        """Record that ``owner`` agreed to ``purpose`` under notice ``notice_version`` (default: the current
        one, which is what the owner must have been shown). Already in force under that notice: nothing
        is written and the standing grant is returned."""
        _check_actor(owner, actor)
        purpose = _purpose(purpose)  # a plain string from an API caller is checked here, not left to SQL
        with self.db.tx() as conn:
            rows = _rows(conn, owner, purpose)
            at = self._now(conn)
            current = self.notices.current(purpose, at)
            notice = current if notice_version is None else self.notices.get(purpose, notice_version)
            if notice.published > at or notice.version < self.notices.min_version(purpose, at):
                raise UsageError(f"notice v{notice.version} of {purpose} cannot be agreed to now; "
                                 f"show the current notice (v{current.version})")  # fmt: skip
            state = self._decide(rows, owner, purpose, at)
            if state.allowed and state.grant is not None and state.grant.notice_version == notice.version:
                return ConsentChange(state.grant, recorded=False)
            record = ConsentRecord(0, str(uuid.uuid4()), owner, purpose, "grant", notice.version, notice.sha256,
                                   method, actor, at, None)  # fmt: skip
            return ConsentChange(_insert(conn, record), recorded=True)

    def withdraw(self, owner: str, purpose: Purpose, *, actor: str, method: Method) -> ConsentChange | None:
        """Record that ``owner`` withdrew ``purpose``: it ends the latest grant not yet withdrawn (even one
        whose notice no longer counts: what was sent under it must still be retracted). None when there is
        no such grant (nothing is written)."""
        _check_actor(owner, actor)
        purpose = _purpose(purpose)
        with self.db.tx() as conn:
            rows = _rows(conn, owner, purpose)
            if not rows or rows[-1].action == "withdraw":
                return None
            record = ConsentRecord(0, str(uuid.uuid4()), owner, purpose, "withdraw", None, None, method, actor,
                                   self._now(conn), rows[-1].consent_id)  # fmt: skip
            return ConsentChange(_insert(conn, record), recorded=True)

    # -- questions --------------------------------------------------------------------------------

    def allows(self, owner: str, purpose: Purpose, at: float | None = None) -> ConsentState:
        """Is consent for ``purpose`` in force for ``owner`` at ``at`` (default: now, which honours every row
        written so far)? Truthy if so. A sender asks through :meth:`allows_in`, inside the transaction that
        claims the item."""
        with self.db.tx() as conn:  # one snapshot for "now" and the rows
            return self.allows_in(conn, owner, purpose, at)

    def allows_in(self, conn: sqlite3.Connection, owner: str, purpose: Purpose,
                  at: float | None = None) -> ConsentState:  # fmt: skip
        """:meth:`allows` inside the caller's transaction: the send-time re-check. Leave ``at`` out there."""
        return self._decide(_rows(conn, owner, purpose), owner, purpose, self._now(conn) if at is None else at)

    def states(self, owner: str, at: float | None = None) -> list[ConsentState]:
        """One answer per purpose."""
        return [self.allows(owner, p, at) for p in Purpose]

    def history(self, owner: str) -> list[ConsentRecord]:
        """Every row of ``owner``, in the order they were written."""
        return [_record(r) for r in self.db.query(f"SELECT {_COLUMNS} FROM {TABLE} WHERE owner = ? ORDER BY seq",
                                                  (owner,))]  # fmt: skip

    def changes_since(self, seq: int) -> list[ConsentRecord]:
        """Rows appended after ``seq`` (0: all): how a running service notices a withdrawal quickly and cheaply."""
        rows = self.db.query(f"SELECT {_COLUMNS} FROM {TABLE} WHERE seq > ? ORDER BY seq", (seq,))
        return [_record(r) for r in rows]

    def export(self, owner: str) -> dict:
        """The owner's copy (``consent.json`` in a rights export): state, full history, and the exact text of
        every notice the owner agreed to, with its hash."""
        history = self.history(owner)
        agreed = sorted({(r.purpose, r.notice_version) for r in history if r.notice_version is not None})
        notices = [self.notices.get(p, v) for p, v in agreed]
        return {"owner": owner, "state": [s.to_json() for s in self.states(owner)],
                "history": [r.to_json() for r in history],
                "notices": [{"purpose": n.purpose.value, "version": n.version, "sha256": n.sha256, "text": n.text}
                            for n in notices]}

    def _now(self, conn: sqlite3.Connection) -> float:
        """The clock, but never earlier than the ledger's latest row. A clock stepped back (NTP) must neither
        date a withdrawal before the grant it ends nor hide a withdrawal from a "now" question: the ledger's
        times only ever grow, so "the last row at or before t" is well defined and nothing written is unseen."""
        latest = conn.execute(f"SELECT MAX(at) AS at FROM {TABLE}").fetchone()["at"]
        return max(self.clock(), float(latest)) if latest is not None else self.clock()

    def _decide(self, rows: Sequence[ConsentRecord], owner: str, purpose: Purpose, at: float) -> ConsentState:
        purpose = _purpose(purpose)
        return decide(rows, owner=owner, purpose=purpose, at=at, min_version=self.notices.min_version(purpose, at))


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_actor(owner: str, actor: str) -> None:
    if not owner:
        raise UsageError("--owner: an owner id is required")
    if actor != owner:
        raise NotTheOwner(f"only the owner can grant or withdraw consent: {actor!r} is not owner {owner!r}")


def _purpose(purpose: Purpose | str) -> Purpose:
    return purpose if isinstance(purpose, Purpose) else Purpose.parse(purpose, option="purpose")


def _rows(db: Database | sqlite3.Connection, owner: str, purpose: Purpose) -> list[ConsentRecord]:
    sql = f"SELECT {_COLUMNS} FROM {TABLE} WHERE owner = ? AND purpose = ? ORDER BY seq"
    params = (owner, _purpose(purpose).value)
    fetched = db.query(sql, params) if isinstance(db, Database) else db.execute(sql, params).fetchall()
    return [_record(r) for r in fetched]


def _insert(conn: sqlite3.Connection, r: ConsentRecord) -> ConsentRecord:
    cur = conn.execute(f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (r.consent_id, r.owner, r.purpose.value, r.action, r.notice_version, r.notice_sha256,
                        r.method, r.actor, r.at, r.withdraws))  # fmt: skip
    return replace(r, seq=int(cur.lastrowid or 0))


def _record(row: sqlite3.Row) -> ConsentRecord:
    return ConsentRecord(int(row["seq"]), row["consent_id"], row["owner"], Purpose(row["purpose"]), row["action"],
                         row["notice_version"], row["notice_sha256"], row["method"], row["actor"],
                         float(row["at"]), row["withdraws"])  # fmt: skip


def _statements(script: str) -> list[str]:
    """The schema's statements one by one (``executescript`` would COMMIT the caller's transaction)."""
    out, buf = [], ""
    for line in script.strip().splitlines():
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf)
            buf = ""
    return out
