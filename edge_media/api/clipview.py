"""The API's read model of recorded clips and their events: built from :class:`ClipCatalog`, kept in memory.

Clips are immutable once recorded, so the sorted lists of clips and events are rebuilt only when something may
have changed (a cheap signature: the database's change counters and the spool's file names), and
each clip's sidecar details are parsed once (``details_cache``). Ten clients polling once a second then cost a
signature query and a scan of an in-memory list each, never a sidecar parse or a store GET.

Pages are newest first and addressed by an opaque cursor: the sort key of the last item returned. An item
recorded after a page was read sorts before the cursor, so it never shifts or repeats a later page.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import UsageError
from ..service.bus import event_id
from ..service.catalog import ClipCatalog, ClipDetails, ClipRecord
from ..service.context import HubContext

_TOP = chr(0x10FFFF)  # sorts after every inverted tie breaker: bisects to the edge of a time
MAX_AGE_S = 30.0  # rebuilt at least this often even if the signature did not change (a plan re-tag)

T = TypeVar("T")


class BadCursor(UsageError):
    """A cursor this API did not hand out (or for another listing)."""


@dataclass(frozen=True)
class EventItem:
    event_id: str
    clip_id: str
    camera: str
    label: str
    score: float
    start: float  # epoch seconds
    end: float

    @property
    def sort_key(self) -> tuple[float, str]:
        return (self.start, self.event_id + self.clip_id)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(kind: str, key: tuple[float, str]) -> str:
    raw = json.dumps([kind, key[0], key[1]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        k, at, tie = json.loads(raw)
        if k != kind or not isinstance(tie, str) or not isinstance(at, int | float) or isinstance(at, bool):
            raise ValueError
        return (float(at), tie)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadCursor("cursor: not a cursor of this listing (pass next_cursor back unchanged)") from None


def clip_key(clip: ClipRecord) -> tuple[float, str]:
    return (clip.wall_end, clip.clip_id)


def clip_events(clip: ClipRecord) -> list[EventItem]:
    """A clip's events in wall-clock time; ids as the hub's notices give them (same source, label, start)."""
    d, camera = clip.details, clip.camera
    if d is None or camera is None:
        return []
    return [EventItem(event_id(camera, e.label, e.start), clip.clip_id, camera, e.label, float(e.score),
                      d.wall_start + (e.start - d.stream_start), d.wall_start + (e.until - d.stream_start))
            for e in d.events]  # fmt: skip


@dataclass(frozen=True)
class _Snapshot:
    signature: tuple
    built: float
    clips: list[ClipRecord]  # newest first
    clip_keys: list[tuple[float, str]]  # inverted (see _neg) for bisect: ascending
    events: list[EventItem]  # newest first
    event_keys: list[tuple[float, str]]


class ClipView:
    def __init__(self, ctx: HubContext, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx, self.clock = ctx, clock
        self._details: dict[str, ClipDetails] = {}
        self._lock = threading.Lock()
        self._snap: _Snapshot | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._snap = None

    def get(self, clip_id: str) -> ClipRecord | None:
        """One clip, fresh from the catalog (not the cached listing: a link or a flag must see erasures at once)."""
        return ClipCatalog(self.ctx, details_cache=self._details).get(clip_id)

    def clips(self, sources: Collection[str], *, limit: int, cursor: str | None) -> Page[ClipRecord]:
        snap = self._snapshot()
        start = _after(snap.clip_keys, decode_cursor("clips", cursor)) if cursor else 0
        return _page(snap.clips, start, len(snap.clips), lambda c: c.camera in sources, limit, "clips", clip_key)

    def events(self, sources: Collection[str], *, limit: int, cursor: str | None, label: str | None = None,
               since: float | None = None, until: float | None = None) -> Page[EventItem]:
        snap = self._snapshot()
        keys = snap.event_keys
        start = _after(keys, decode_cursor("events", cursor)) if cursor else 0
        if until is not None:  # newest first: skip straight to the events that started before ``until``
            start = max(start, bisect.bisect_right(keys, (-until, _TOP)))
        # ... and stop at the first one that started before ``since``
        stop = len(keys) if since is None else bisect.bisect_right(keys, (-since, _TOP))

        def keep(e: EventItem) -> bool:
            return e.camera in sources and (label is None or e.label == label)

        return _page(snap.events, start, stop, keep, limit, "events", lambda e: e.sort_key)

    def _snapshot(self) -> _Snapshot:
        signature = self._signature()
        with self._lock:
            snap = self._snap
            if snap is not None and snap.signature == signature and self.clock() - snap.built < MAX_AGE_S:
                return snap
            clips = ClipCatalog(self.ctx, details_cache=self._details).list_clips()
            known = {c.clip_id for c in clips}
            for gone in set(self._details) - known:  # erased or expired: forget their details
                del self._details[gone]
            clips.sort(key=clip_key, reverse=True)
            events = sorted((e for c in clips for e in clip_events(c)), key=lambda e: e.sort_key, reverse=True)
            self._snap = _Snapshot(signature, self.clock(), clips, [_neg(clip_key(c)) for c in clips],
                                   events, [_neg(e.sort_key) for e in events])  # fmt: skip
            return self._snap

    def _signature(self) -> tuple:
        # O(1): any write to the hub's database (this process or another) or a clip entering or leaving the
        # spool. Most writes are not about clips; a rebuild then reuses every parsed sidecar.
        changes = self.ctx.db.change_count()
        try:
            names = tuple(sorted(n for n in os.listdir(self.ctx.spool.ready_dir) if n.endswith(".json")))
        except OSError:
            names = ()
        return (changes, names)


def _neg(key: tuple[float, str]) -> tuple[float, str]:
    # Newest-first lists are kept with ascending negated keys so ``bisect`` finds a cursor's position. The tie
    # breaker is inverted by mapping each character; the terminator makes a prefix sort after its extensions.
    return (-key[0], "".join(chr(0x10FFFE - ord(ch)) for ch in key[1]) + _TOP)


def _after(keys: list[tuple[float, str]], cursor: tuple[float, str]) -> int:
    """Index of the first item strictly after ``cursor`` in a newest-first list."""
    return bisect.bisect_right(keys, _neg(cursor))


def _page(items: list[T], start: int, stop: int, keep: Callable[[T], bool], limit: int, kind: str,
          key: Callable[[T], tuple[float, str]]) -> Page[T]:
    out: list[T] = []
    more = False
    for i in range(start, stop):
        item = items[i]
        if not keep(item):
            continue
        if len(out) == limit:
            more = True
            break
        out.append(item)
    return Page(out, encode_cursor(kind, key(out[-1])) if more and out else None)
