"""Misdetection flags: the owner says an event of a clip was wrong, or that the model missed one.

A flag belongs to the owner: it is kept here, in the privacy package's own table of the hub's database, is
part of the owner's export and is removed by the owner's erasure. Whether anything of it may ever reach the
model partner is decided elsewhere (consent, anonymiser, feedback outbox); this module only records what the
owner said, after checking that it makes sense for that clip, and marks whether it is the kind of flag the
promise covers at all (audio events: yes; motion: kept locally, never sent).

:func:`decide_flag` is the pure check (no I/O); :class:`FlagService` checks and stores, and is the one place
that will hand an eligible flag to the feedback queue.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Protocol

from recorder.events import Event
from uploader.db import Database

from ..errors import EdgeMediaError, UsageError

TABLE = "privacy_flags"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (  -- what owners reported about their clips' events
    flag_id           TEXT PRIMARY KEY,   -- uuid4
    clip_id           TEXT NOT NULL,
    camera_hash       TEXT NOT NULL,
    owner             TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('wrong', 'missed')),
    label             TEXT NOT NULL,
    truth             TEXT,               -- the right label, 'nothing', or NULL (not said)
    score             REAL,               -- the flagged event's peak score (wrong flags)
    event_start_s     REAL,               -- its span, seconds into the clip (wrong flags)
    event_end_s       REAL,
    partner_eligible  INTEGER NOT NULL,   -- 1: an audio flag, the only kind that may go to the partner
    created           REAL NOT NULL,      -- epoch seconds, UTC
    actor             TEXT NOT NULL       -- who flagged it: 'cli:<user>'
)
"""
INDEX = f"CREATE INDEX IF NOT EXISTS {TABLE}_owner ON {TABLE} (owner)"
# One flag per clip, kind and label: a repeated report would otherwise queue the same sample twice.
UNIQUE = f"CREATE UNIQUE INDEX IF NOT EXISTS {TABLE}_once ON {TABLE} (clip_id, kind, label)"

MOTION = "motion"
NOTHING = "nothing"  # --truth: there was no event at all
FlagKind = Literal["wrong", "missed"]


class ClipUnreadable(EdgeMediaError):
    """The clip's events cannot be read right now (its sidecar lives only in a store that is down): a failure at
    run time (exit 1), not bad input; nothing is stored, and the same command works once the store is back."""


class AlreadyFlagged(UsageError):
    """The same clip, kind and label was flagged before (nothing stored)."""


@dataclass(frozen=True)
class Flag:
    flag_id: str
    clip_id: str
    camera_hash: str
    owner: str
    kind: FlagKind
    label: str
    truth: str | None
    score: float | None
    event_start_s: float | None
    event_end_s: float | None
    partner_eligible: bool
    created: float
    actor: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FlaggableClip(Protocol):
    """What a flag needs to know of a clip (the hub's clip catalog provides it)."""

    @property
    def clip_id(self) -> str: ...
    @property
    def camera_hash(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def events(self) -> tuple[Event, ...] | None: ...
    @property
    def has_audio(self) -> bool | None: ...
    @property
    def has_video(self) -> bool | None: ...
    @property
    def stream_start(self) -> float: ...


@dataclass(frozen=True)
class FlagRequest:
    kind: FlagKind
    label: str
    truth: str | None = None
    actor: str = "cli"


def decide_flag(clip: FlaggableClip, request: FlagRequest, audio_labels: Collection[str], *,
                flag_id: str, created: float) -> Flag:
    """The flag ``request`` makes of ``clip``, or a :class:`UsageError` naming why it makes no sense
    (:class:`ClipUnreadable` when the clip's events are unknown)."""
    label, truth = request.label, request.truth
    _check_label(label, audio_labels, f"--{request.kind}")
    is_audio = label != MOTION
    events = clip.events
    if events is None:
        raise ClipUnreadable(f"clip {clip.clip_id}: its events cannot be read (is the store reachable?); "
                             "nothing stored")
    if is_audio and not clip.has_audio:
        raise UsageError(f"clip {clip.clip_id} has no audio: an audio event ({label}) cannot be flagged on it")
    if not is_audio and not clip.has_video:
        raise UsageError(f"clip {clip.clip_id} has no video: motion cannot be flagged on it")
    matching = [e for e in events if e.label == label]
    if request.kind == "wrong" and not matching:
        found = ", ".join(sorted({e.label for e in events})) or "none"
        raise UsageError(f"--wrong {label}: clip {clip.clip_id} has no {label} event (its events: {found})")
    if request.kind == "missed" and matching:
        raise UsageError(f"--missed {label}: clip {clip.clip_id} already has a {label} event; use --wrong")
    if truth is not None:
        _check_truth(request, audio_labels)
    span = _span(matching, clip.stream_start) if request.kind == "wrong" else None
    return Flag(flag_id=flag_id, clip_id=clip.clip_id, camera_hash=clip.camera_hash, owner=clip.owner,
                kind=request.kind, label=label, truth=truth, score=span[0] if span else None,
                event_start_s=span[1] if span else None, event_end_s=span[2] if span else None,
                partner_eligible=is_audio, created=created, actor=request.actor)  # fmt: skip


def _check_label(label: str, audio_labels: Collection[str], what: str) -> None:
    if label != MOTION and label not in audio_labels:
        known = ", ".join([*sorted(audio_labels), MOTION])
        raise UsageError(f"{what}: {label!r} is not a label of the audio model nor {MOTION} (labels: {known})")


def _check_truth(request: FlagRequest, audio_labels: Collection[str]) -> None:
    truth = request.truth
    if request.kind == "missed":
        raise UsageError(f"--truth goes with --wrong: a missed {request.label}'s truth is {request.label}")
    if truth == request.label:
        raise UsageError(f"--truth {truth} is the label being flagged as wrong; give the right label or 'nothing'")
    if truth == NOTHING:
        return
    _check_label(str(truth), audio_labels, "--truth")
    if (truth == MOTION) != (request.label == MOTION):
        raise UsageError(f"--truth {truth}: a {request.label} event can only be corrected to another "
                         f"{'motion' if request.label == MOTION else 'audio'} label or 'nothing'")


def _span(events: Sequence[Event], stream_start: float) -> tuple[float, float, float]:
    """(peak score, start, end) over every event of the flagged label, in seconds into the clip: the flag is
    about that label in this clip, so the anonymiser cuts around all of it."""
    start = min(e.start for e in events) - stream_start
    end = max(e.until for e in events) - stream_start
    return max(e.score for e in events), round(max(0.0, start), 3), round(max(0.0, end), 3)


class Flags:
    """The repository; creating it creates its table."""

    def __init__(self, db: Database) -> None:
        self.db = db
        with db.tx() as conn:
            for statement in (SCHEMA, INDEX, UNIQUE):
                conn.execute(statement)

    @staticmethod
    def add(conn: sqlite3.Connection, flag: Flag) -> None:
        values = flag.to_dict()
        values["partner_eligible"] = int(flag.partner_eligible)
        names = ", ".join(values)
        conn.execute(f"INSERT INTO {TABLE} ({names}) VALUES ({', '.join('?' for _ in values)})",
                     tuple(values.values()))  # fmt: skip

    def list_flags(self, *, owner: str | None = None) -> list[Flag]:
        """Flags, oldest first (of ``owner``, when given)."""
        columns = ", ".join(f.name for f in fields(Flag))
        if owner is None:
            rows = self.db.query(f"SELECT {columns} FROM {TABLE} ORDER BY created, flag_id")
        else:
            rows = self.db.query(f"SELECT {columns} FROM {TABLE} WHERE owner = ? ORDER BY created, flag_id", (owner,))
        return [Flag(**{**dict(r), "partner_eligible": bool(r["partner_eligible"])}) for r in rows]

    def export_json(self, owner: str) -> bytes:
        """The owner's flags as the JSON document their export carries."""
        return json.dumps([f.to_dict() for f in self.list_flags(owner=owner)], indent=2).encode()

    @staticmethod
    def delete_for_owner(conn: sqlite3.Connection, owner: str) -> int:
        """Inside the erasure's transaction: forget every flag of ``owner``; returns how many."""
        return conn.execute(f"DELETE FROM {TABLE} WHERE owner = ?", (owner,)).rowcount


class FeedbackHook(Protocol):
    """The feedback outbox's side of a flag (edge_media.service.feedback.FlagFeedback)."""

    def prepare(self, flag: Flag) -> Any: ...  # the anonymised sample, or None: consent does not allow it
    def insert(self, conn: sqlite3.Connection, prepared: Any) -> bool: ...
    def discard(self, prepared: Any) -> None: ...


class FlagService:
    """Checks a flag against its clip and stores it: the one place a partner-eligible flag is handed on."""

    def __init__(self, db: Database, audio_labels: Collection[str], *, clock: Callable[[], float] = time.time,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.db, self.audio_labels, self.clock, self.new_id = db, frozenset(audio_labels), clock, new_id
        self.flags = Flags(db)

    def flag(self, clip: FlaggableClip, request: FlagRequest, feedback: FeedbackHook | None = None) -> Flag:
        """Check and store; raises :class:`UsageError` (nothing stored) for a flag that makes no sense or was
        already made. The seam for the feedback queue: a ``partner_eligible`` flag's queue item is to be added in
        the transaction below, so that a flag and its item commit together (consent is checked when the item is
        queued and again when it is sent, not here)."""
        flag = decide_flag(clip, request, self.audio_labels, flag_id=self.new_id(), created=self.clock())
        # Anonymised before the transaction (slow), only if consent allows it now; queued inside it.
        prepared = feedback.prepare(flag) if feedback is not None and flag.partner_eligible else None
        queued = False
        try:
            with self.db.tx() as conn:
                same = conn.execute(f"SELECT flag_id FROM {TABLE} WHERE clip_id = ? AND kind = ? AND label = ?",
                                    (flag.clip_id, flag.kind, flag.label)).fetchone()  # fmt: skip
                if same is not None:
                    raise AlreadyFlagged(f"clip {flag.clip_id}: {flag.kind} {flag.label} is already flagged "
                                     f"(flag {same['flag_id']}); nothing stored")
                Flags.add(conn, flag)
                queued = prepared is not None and feedback is not None and feedback.insert(conn, prepared)
        finally:
            if prepared is not None and feedback is not None and not queued:
                feedback.discard(prepared)
        return flag
