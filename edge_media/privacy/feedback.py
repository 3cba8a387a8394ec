"""The feedback outbox: anonymised audio waiting for the model partner, and the record of what was sent.

One owner for three tables of the hub's database (nobody else writes them):

* ``feedback_outbox``: samples queued for the partner. A row exists only if the owner's consent for its purpose
  allowed it when it was inserted, and the sender re-checks that consent in the transaction that claims it.
  The anonymised FLAC and JSON wait in ``data_dir/feedback/`` (written to a temp name, fsynced, renamed).
* ``feedback_disclosures``: one row per sample that reached the partner (sample id, purpose, the consent it was
  sent under, label, bytes, time). The owner reads it; a withdrawal retracts from it. Never audio.
* ``feedback_retractions``: the retraction objects owed to the partner bucket, kept until written (durable: a
  partner store that is down gets it on a later pass).

Owner ids stay here: nothing of these rows but sample ids and the allow-listed sample JSON leaves the hub.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from uploader.db import Database

from .anonymise import AnonymisedSample, anonymise
from .consent import ConsentLedger, _rows, _statements
from .notices import Purpose

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback_outbox (      -- anonymised samples waiting for the partner
    sample_id   TEXT PRIMARY KEY,                 -- uuid4, also the object keys' name
    owner       TEXT NOT NULL,                    -- local only: never sent
    purpose     TEXT NOT NULL,
    label       TEXT NOT NULL,                    -- flagged label, or '' (product improvement)
    flac_key    TEXT NOT NULL,
    json_key    TEXT NOT NULL,
    bytes       INTEGER NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'inflight', 'purge')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_outbox_owner ON feedback_outbox (owner, purpose);
CREATE TABLE IF NOT EXISTS feedback_disclosures (  -- what reached the partner: the owner reads this
    sample_id      TEXT PRIMARY KEY,
    owner          TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    consent_id     TEXT NOT NULL,                  -- the grant it was sent under
    label          TEXT NOT NULL,
    bytes          INTEGER NOT NULL,
    sent_at        REAL NOT NULL,
    retraction_id  TEXT                            -- set once a retraction lists it
);
CREATE INDEX IF NOT EXISTS feedback_disclosures_owner ON feedback_disclosures (owner, purpose);
CREATE TABLE IF NOT EXISTS feedback_retractions (  -- retraction objects owed to the partner bucket
    retraction_id  TEXT PRIMARY KEY,
    owner          TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    sample_ids     TEXT NOT NULL,                  -- JSON list
    created        REAL NOT NULL,
    written        REAL                            -- NULL until the object is in the partner bucket
);
CREATE TABLE IF NOT EXISTS feedback_daily (        -- product-improvement bytes queued per UTC day (the cap)
    day    TEXT PRIMARY KEY,
    bytes  INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Prepared:
    """An anonymised sample written to the spool, not yet in the outbox."""

    sample: AnonymisedSample
    owner: str
    purpose: Purpose
    label: str
    flac_path: Path
    json_path: Path

    @property
    def bytes(self) -> int:
        return len(self.sample.flac)


@dataclass(frozen=True)
class Item:
    sample_id: str
    owner: str
    purpose: Purpose
    label: str
    flac_key: str
    json_key: str
    bytes: int
    attempts: int


@dataclass(frozen=True)
class Disclosure:
    sample_id: str
    owner: str
    purpose: str
    consent_id: str
    label: str
    bytes: int
    sent_at: float
    retraction_id: str | None

    def to_json(self) -> dict:
        return {"sample_id": self.sample_id, "purpose": self.purpose, "consent_id": self.consent_id,
                "label": self.label or None, "bytes": self.bytes, "sent_at": _iso(self.sent_at),
                "retracted": self.retraction_id is not None, "retraction_id": self.retraction_id}


@dataclass(frozen=True)
class Retraction:
    retraction_id: str
    owner: str
    purpose: str
    sample_ids: tuple[str, ...]
    created: float

    @property
    def key(self) -> str:
        return f"retractions/{self.retraction_id}.json"

    def body(self) -> bytes:
        """The object: sample ids and a month, nothing about the owner."""
        return json.dumps({"retraction_id": self.retraction_id, "created_month": _month(self.created),
                           "sample_ids": list(self.sample_ids)}, sort_keys=True).encode()


SPOOL_NAME = "feedback"


def spool_of(db: Database) -> Path:
    """The feedback spool sits beside the hub's database, in ``service.data_dir``."""
    return db.path.parent / SPOOL_NAME


def create_schema(db: Database) -> None:
    with db.tx() as conn:
        for statement in _statements(SCHEMA):
            conn.execute(statement)


def delete_for_owner(conn: sqlite3.Connection, owner: str) -> list[str]:
    """Inside the erasure's transaction: forget ``owner``'s queued samples (not one being uploaded: the sender
    finishes it and it is logged as a disclosure). One tried before (a pass that failed after its upload) may be
    in the partner bucket, unlisted: it is left for the sender to remove (``purge``, as after a withdrawal), not
    forgotten with its objects still there. Disclosures and retractions stay: they prove what was sent, under
    which consent, and that it was retracted. Returns the sample ids whose files go (:func:`discard_for_owner`)."""
    rows = conn.execute("SELECT sample_id, attempts FROM feedback_outbox WHERE owner = ? AND state != 'inflight'",
                        (owner,)).fetchall()  # fmt: skip
    conn.executemany("DELETE FROM feedback_outbox WHERE sample_id = ?",
                     [(r["sample_id"],) for r in rows if not r["attempts"]])  # fmt: skip
    conn.execute("UPDATE feedback_outbox SET state = 'purge' WHERE owner = ? AND state = 'pending' AND attempts > 0",
                 (owner,))  # fmt: skip
    return [r["sample_id"] for r in rows]


def discard_for_owner(spool: Path, owner: str, sample_ids: list[str]) -> None:
    """After the erasure's commit: the samples' files, and clips offered for product improvement not yet
    anonymised."""
    for sample_id in sample_ids:
        for suffix in (".flac", ".json"):
            (spool / f"{sample_id}{suffix}").unlink(missing_ok=True)
    incoming = spool / "incoming"
    for meta in incoming.glob("*.json") if incoming.is_dir() else ():
        try:
            offer = json.loads(meta.read_bytes())
        except (OSError, ValueError):
            continue
        if offer.get("owner") == owner:
            (incoming / str(offer.get("file"))).unlink(missing_ok=True)
            meta.unlink(missing_ok=True)


def disclosures_json(db: Database, owner: str) -> bytes:
    """The owner's disclosure log as their export carries it (``feedback-disclosures.json``)."""
    rows = db.query("SELECT * FROM feedback_disclosures WHERE owner = ? ORDER BY sent_at, sample_id", (owner,))
    return json.dumps([Disclosure(**dict(r)).to_json() for r in rows], indent=2).encode()


class FeedbackQueue:
    """The repository; creating it creates its tables and, with ``recover``, puts a crashed run's leftovers right.
    Only the sending process recovers, at its start: anyone else opening the queue while a sender works (an API
    flag or disclosure listing, a withdrawal, the CLI) would turn the sender's in-flight item pending again (a
    second claim of it in the same pass) and delete the files of a sample prepared but not inserted yet (a row
    then stuck without its audio)."""

    def __init__(self, db: Database, spool: Path, ledger: ConsentLedger, *,
                 clock: Callable[[], float] = time.time, recover: bool = True) -> None:  # fmt: skip
        self.db, self.spool, self.ledger, self.clock = db, Path(spool), ledger, clock
        create_schema(db)
        if recover:
            self.recover()

    # -- queueing ---------------------------------------------------------------------------------

    def allows(self, owner: str, purpose: Purpose) -> bool:
        return bool(self.ledger.allows(owner, purpose))

    def prepare(self, owner: str, purpose: Purpose, clip: Path, *, label: str = "", **anon: object) -> Prepared:
        """Anonymise ``clip`` (``anon``: :func:`anonymise`'s keywords) and write it to the spool. Slow (decoding,
        speech masking), so it runs outside any transaction; :meth:`insert` then decides, atomically."""
        sample = anonymise(clip, purpose=purpose.value, **anon)  # type: ignore[arg-type]
        self.spool.mkdir(parents=True, exist_ok=True)
        flac, meta = self.spool / f"{sample.sample_id}.flac", self.spool / f"{sample.sample_id}.json"
        write_atomic(flac, sample.flac)
        write_atomic(meta, sample.json_bytes())
        return Prepared(sample, owner, purpose, label, flac, meta)

    def insert(self, conn: sqlite3.Connection, p: Prepared, *, daily_cap: int | None = None) -> bool:
        """Inside the caller's transaction: queue ``p`` if consent allows it now (and, with ``daily_cap``, if
        today's bytes stay under it). False: not queued; the caller calls :meth:`discard` after its commit."""
        if not self.ledger.allows_in(conn, p.owner, p.purpose):
            return False
        if daily_cap is not None:
            day = _day(self.clock())
            row = conn.execute("SELECT bytes FROM feedback_daily WHERE day = ?", (day,)).fetchone()
            used = int(row["bytes"]) if row else 0
            if used + p.bytes > daily_cap:
                return False
            conn.execute("INSERT INTO feedback_daily (day, bytes) VALUES (?, ?) ON CONFLICT (day) "
                         "DO UPDATE SET bytes = bytes + excluded.bytes", (day, p.bytes))  # fmt: skip
        conn.execute("INSERT INTO feedback_outbox (sample_id, owner, purpose, label, flac_key, json_key, bytes, "
                     "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (p.sample.sample_id, p.owner, p.purpose.value, p.label, p.sample.key, p.sample.json_key,
                      p.bytes, self.clock()))  # fmt: skip
        return True

    def queue(self, p: Prepared, *, daily_cap: int | None = None) -> bool:
        """:meth:`insert` in a transaction of its own; the spool files go when it is not queued."""
        with self.db.tx() as conn:
            queued = self.insert(conn, p, daily_cap=daily_cap)
        if not queued:
            self.discard(p.sample.sample_id)
        return queued

    def discard(self, sample_id: str) -> None:
        for suffix in (".flac", ".json"):
            (self.spool / f"{sample_id}{suffix}").unlink(missing_ok=True)

    # -- sending (the sender's side) -----------------------------------------------------------------

    def claim(self, skip: Collection[str] = ()) -> tuple[Item, str] | tuple[Item, None] | None:
        """One transaction: the next pending item (not one of ``skip``), and consent re-checked for it. (item,
        consent id): claimed (now inflight); (item, None): consent no longer holds; the row is gone, or is to be
        purged if tried before."""
        with self.db.tx() as conn:
            marks = ", ".join("?" for _ in skip)
            row = conn.execute(f"SELECT * FROM feedback_outbox WHERE state = 'pending' AND sample_id NOT IN ({marks}) "
                               "ORDER BY created, sample_id LIMIT 1", tuple(skip)).fetchone()  # fmt: skip
            if row is None:
                return None
            item = _item(row)
            state = self.ledger.allows_in(conn, item.owner, item.purpose)
            if not state:  # a tried item's objects may be up, unlisted: the sender removes them first
                sql = "UPDATE feedback_outbox SET state = 'purge'" if item.attempts else "DELETE FROM feedback_outbox"
                conn.execute(sql + " WHERE sample_id = ?", (item.sample_id,))
                return item, None
            conn.execute("UPDATE feedback_outbox SET state = 'inflight', attempts = attempts + 1 "
                         "WHERE sample_id = ?", (item.sample_id,))  # fmt: skip
            return item, str(state.consent_id)

    def files(self, sample_id: str) -> tuple[Path, Path]:
        return self.spool / f"{sample_id}.flac", self.spool / f"{sample_id}.json"

    def release(self, sample_id: str, error: str) -> None:
        """The upload failed: back to pending for the next pass."""
        with self.db.tx() as conn:
            conn.execute("UPDATE feedback_outbox SET state = 'pending', last_error = ? WHERE sample_id = ?",
                         (error[:500], sample_id))  # fmt: skip

    def mark_sent(self, item: Item, consent_id: str) -> bool:
        """One transaction: the item leaves the outbox and its disclosure is logged. If consent was withdrawn
        while it was uploading, a retraction for it is owed at once; True then."""
        with self.db.tx() as conn:
            conn.execute("DELETE FROM feedback_outbox WHERE sample_id = ?", (item.sample_id,))
            conn.execute("INSERT OR IGNORE INTO feedback_disclosures (sample_id, owner, purpose, consent_id, label, "
                         "bytes, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (item.sample_id, item.owner, item.purpose.value, consent_id, item.label, item.bytes,
                          self.clock()))  # fmt: skip
            if self.ledger.allows_in(conn, item.owner, item.purpose):
                return False
            _owe_retraction(conn, item.owner, item.purpose, self.clock())
            return True

    # -- withdrawal, retractions, rights -------------------------------------------------------------

    def withdrawn(self, owner: str, purpose: Purpose) -> int:
        """Right after a withdrawal: delete ``owner``'s queued items of ``purpose`` (rows, then files) and owe a
        retraction of everything sent under earlier consents. Items being uploaded are retracted by
        :meth:`mark_sent`. Returns how many queued items were deleted. Idempotent."""
        with self.db.tx() as conn:
            if self.ledger.allows_in(conn, owner, purpose):
                # Granted again since (a withdrawal the sender learns of late, e.g. after a crash): what is queued
                # now is the new grant's, but what went out before the withdrawal is still to be retracted.
                withdrawals = [r.at for r in _rows(conn, owner, purpose) if r.action == "withdraw"]
                if withdrawals:
                    _owe_retraction(conn, owner, purpose, self.clock(), sent_before=max(withdrawals))
                return 0
            ids = [r["sample_id"] for r in conn.execute(
                "SELECT sample_id FROM feedback_outbox WHERE owner = ? AND purpose = ? AND state = 'pending' "
                "AND attempts = 0", (owner, purpose.value))]  # fmt: skip
            conn.executemany("DELETE FROM feedback_outbox WHERE sample_id = ?", [(i,) for i in ids])
            # Tried before (a crash or a failed manifest): its objects may be in the bucket unlisted; the
            # sender removes them before anything else.
            conn.execute("UPDATE feedback_outbox SET state = 'purge' WHERE owner = ? AND purpose = ? "
                         "AND state = 'pending'", (owner, purpose.value))  # fmt: skip
            _owe_retraction(conn, owner, purpose, self.clock())
        for sample_id in ids:
            self.discard(sample_id)
        return len(ids)

    def purges(self) -> list[Item]:
        return [_item(r) for r in self.db.query("SELECT * FROM feedback_outbox WHERE state = 'purge'")]

    def forget(self, sample_id: str) -> None:
        """A purged item's objects are gone from the partner store: drop its row and files."""
        with self.db.tx() as conn:
            conn.execute("DELETE FROM feedback_outbox WHERE sample_id = ?", (sample_id,))
        self.discard(sample_id)

    def owed_retractions(self) -> list[Retraction]:
        rows = self.db.query("SELECT * FROM feedback_retractions WHERE written IS NULL ORDER BY created")
        return [Retraction(r["retraction_id"], r["owner"], r["purpose"], tuple(json.loads(r["sample_ids"])),
                           float(r["created"])) for r in rows]  # fmt: skip

    def retraction_written(self, retraction_id: str) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE feedback_retractions SET written = ? WHERE retraction_id = ?",
                         (self.clock(), retraction_id))  # fmt: skip

    def disclosures(self, owner: str | None = None) -> list[Disclosure]:
        sql, params = "SELECT * FROM feedback_disclosures", tuple[str, ...]()
        if owner is not None:
            sql, params = sql + " WHERE owner = ?", (owner,)
        return [Disclosure(**dict(r)) for r in self.db.query(sql + " ORDER BY sent_at, sample_id", params)]

    def pending(self, owner: str | None = None) -> list[Item]:
        sql, params = "SELECT * FROM feedback_outbox", tuple[str, ...]()
        if owner is not None:
            sql, params = sql + " WHERE owner = ?", (owner,)
        return [_item(r) for r in self.db.query(sql + " ORDER BY created, sample_id", params)]

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """(samples waiting, samples sent) by purpose, for the hub's metrics: two grouped counts, no rows."""
        waiting = self.db.query("SELECT purpose, COUNT(*) AS n FROM feedback_outbox "
                                "WHERE state != 'purge' GROUP BY purpose")
        sent = self.db.query("SELECT purpose, COUNT(*) AS n FROM feedback_disclosures GROUP BY purpose")
        return {r["purpose"]: r["n"] for r in waiting}, {r["purpose"]: r["n"] for r in sent}

    def recover(self) -> None:
        """Start-up: an item a crash left inflight is pending again (its keys are its sample id, so a retry
        overwrites nothing else); spool files without a row (a crash between writing and inserting) go."""
        with self.db.tx() as conn:
            conn.execute("UPDATE feedback_outbox SET state = 'pending' WHERE state = 'inflight'")
            known = {r["sample_id"] for r in conn.execute("SELECT sample_id FROM feedback_outbox")}
        if self.spool.is_dir():
            for path in self.spool.iterdir():
                if path.is_file() and (path.name.endswith(".tmp") or path.name.split(".")[0] not in known):
                    path.unlink(missing_ok=True)


def _owe_retraction(conn: sqlite3.Connection, owner: str, purpose: Purpose, now: float, *,
                    sent_before: float = math.inf) -> None:  # fmt: skip
    """Owe one retraction object listing every sample of ``owner``/``purpose`` sent (up to ``sent_before``) and
    not yet retracted."""
    ids = [r["sample_id"] for r in conn.execute(
        "SELECT sample_id FROM feedback_disclosures WHERE owner = ? AND purpose = ? AND retraction_id IS NULL "
        "AND sent_at <= ? ORDER BY sample_id", (owner, purpose.value, sent_before))]  # fmt: skip
    if not ids:
        return
    retraction_id = str(uuid.uuid4())
    conn.execute("INSERT INTO feedback_retractions (retraction_id, owner, purpose, sample_ids, created) "
                 "VALUES (?, ?, ?, ?, ?)", (retraction_id, owner, purpose.value, json.dumps(ids), now))  # fmt: skip
    conn.executemany("UPDATE feedback_disclosures SET retraction_id = ? WHERE sample_id = ?",
                     [(retraction_id, i) for i in ids])  # fmt: skip


def _item(row: sqlite3.Row) -> Item:
    return Item(row["sample_id"], row["owner"], Purpose(row["purpose"]), row["label"], row["flac_key"],
                row["json_key"], int(row["bytes"]), int(row["attempts"]))  # fmt: skip


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def _month(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
