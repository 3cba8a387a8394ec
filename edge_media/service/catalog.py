"""The hub's own view of its recorded clips: what the clip index says is stored, plus what the spool still holds.

This is the local view: it names cameras and owners, and never leaves the hub. The index knows objects and
deadlines but not a clip's events, so each clip's details (events, stream start, codecs) come from the most
local source that has them:

1. the spool's own sidecar, while the clip is there (not uploaded yet, or a local copy is kept);
2. the sidecar JSON kept in the clip's outbox row: byte for byte what was uploaded beside the clip (events
   with label, score and span; stream start; codecs), so no round trip;
3. only for clips uploaded by a version that did not keep that JSON: the store's sidecar object (one GET).

A clip whose details cannot be read (the store is down) is still listed, with ``events`` None (unknown).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from recorder import ClipSidecar
from recorder.events import Event
from recorder.sidecar import parse_iso_utc
from uploader import StoreError
from uploader.index import ClipIndex, StoredClip

from ..config import CameraConfig, MicrophoneConfig
from .context import HubContext

log = logging.getLogger(__name__)

Location = Literal["stored", "spool"]
DetailsSource = Literal["spool", "outbox", "store"]


@dataclass(frozen=True)
class ClipDetails:
    """What a clip's sidecar says that the index does not."""

    events: tuple[Event, ...]
    stream_start: float  # stream seconds of the clip's first packet: event times minus this are clip offsets
    wall_start: float  # epoch seconds
    video_codec: str  # "" for an audio-only clip
    audio_codec: str | None
    source: DetailsSource

    @classmethod
    def from_sidecar(cls, data: Mapping[str, Any], source: DetailsSource) -> ClipDetails:
        """From a spool sidecar or the redacted copy that was uploaded (both carry these fields)."""
        return cls(events=tuple(Event.from_dict(dict(e)) for e in data.get("events", [])),
                   stream_start=float(data["stream_start"]), wall_start=parse_iso_utc(data["wall_start"]),
                   video_codec=str(data.get("video_codec") or ""), audio_codec=data.get("audio_codec") or None,
                   source=source)


@dataclass(frozen=True)
class ClipRecord:
    clip_id: str
    camera: str | None  # the configured camera or microphone; None for one since removed from the config
    camera_hash: str
    owner: str
    wall_end: float  # epoch seconds
    location: Location  # "stored": in the object store (maybe with a local copy); "spool": not uploaded yet
    key: str | None  # the clip's object key when stored
    local_path: str | None  # the clip file on this hub, if any
    retain_until: float | None  # the store's deletion deadline, when stored
    details: ClipDetails | None  # None: its sidecar could not be read

    @property
    def events(self) -> tuple[Event, ...] | None:
        return None if self.details is None else self.details.events

    @property
    def stream_start(self) -> float:
        return 0.0 if self.details is None else self.details.stream_start

    @property
    def has_audio(self) -> bool | None:
        return None if self.details is None else self.details.audio_codec is not None

    @property
    def has_video(self) -> bool | None:
        return None if self.details is None else bool(self.details.video_codec)


class ClipCatalog:
    def __init__(self, ctx: HubContext, *, details_cache: MutableMapping[str, ClipDetails] | None = None) -> None:
        """``details_cache``: clip id -> details read from the outbox or the store, kept across listings by a
        caller that lists often (the API). Safe because a clip's sidecar never changes once written."""
        self.ctx = ctx
        self.index = ClipIndex(ctx.db)
        self.details_cache = details_cache
        sources: list[CameraConfig | MicrophoneConfig] = [*ctx.config.cameras, *ctx.config.microphones]
        self.camera_names = {ctx.camera_hash(s.name): s.name for s in sources}  # hash -> configured name

    def list_clips(self, *, owner: str | None = None, camera: str | None = None,
                   limit: int | None = None) -> list[ClipRecord]:
        """Clips of ``owner`` / ``camera`` (a configured name), newest recording first, at most ``limit``."""
        hashes = None if camera is None else [self.ctx.camera_hash(camera)]
        stored = self.index.list_clips(owner=owner, camera_hashes=hashes, limit=limit)
        spooled = {sc.clip_id: (path, sc) for path, sc in self.ctx.spool.ready()
                   if (camera is None or sc.camera == camera)
                   and (owner is None or self.ctx.owner_of(sc.camera) == owner)}  # fmt: skip
        reader = _StoreReader(self.ctx)
        records = [self._stored(row, spooled.pop(row.clip_id, None), reader) for row in stored]
        # A spooled clip the (limited) listing did not return may still be stored: a kept local copy.
        records += [self._spooled(path, sc) for path, sc in spooled.values() if not self.index.for_clip(sc.clip_id)]
        records.sort(key=lambda r: (r.wall_end, r.clip_id), reverse=True)
        return records[:limit] if limit is not None else records

    def get(self, clip_id: str) -> ClipRecord | None:
        """One clip by id, wherever it is; None when the hub knows no such clip."""
        rows = self.index.list_clips(clip_id=clip_id)
        spooled = next(((p, sc) for p, sc in self.ctx.spool.ready() if sc.clip_id == clip_id), None)
        if rows:
            return self._stored(rows[0], spooled, _StoreReader(self.ctx))
        return self._spooled(*spooled) if spooled is not None else None

    def _stored(self, row: StoredClip, spooled: tuple[Path, ClipSidecar] | None,
                reader: _StoreReader) -> ClipRecord:
        cache = self.details_cache
        if spooled is not None:
            details: ClipDetails | None = ClipDetails.from_sidecar(spooled[1].to_dict(), "spool")
        elif cache is not None and row.clip_id in cache:
            details = cache[row.clip_id]
        else:
            if row.sidecar_body is not None:
                details = ClipDetails.from_sidecar(json.loads(row.sidecar_body), "outbox")
            else:
                details = reader.details(row.sidecar_key)
            if cache is not None and details is not None:
                cache[row.clip_id] = details
        local = row.local_path or (str(spooled[0]) if spooled is not None else None)
        return ClipRecord(clip_id=row.clip_id, camera=self.camera_names.get(row.camera_hash),
                          camera_hash=row.camera_hash, owner=row.owner, wall_end=parse_iso_utc(row.wall_end),
                          location="stored", key=row.key, local_path=local, retain_until=row.retain_until,
                          details=details)  # fmt: skip

    def _spooled(self, path: Path, sidecar: ClipSidecar) -> ClipRecord:
        known = sidecar.camera in self.camera_names.values()
        return ClipRecord(clip_id=sidecar.clip_id, camera=sidecar.camera if known else None,
                          camera_hash=self.ctx.camera_hash(sidecar.camera), owner=self.ctx.owner_of(sidecar.camera),
                          wall_end=parse_iso_utc(sidecar.wall_end), location="spool", key=None,
                          local_path=str(path), retain_until=None,
                          details=ClipDetails.from_sidecar(sidecar.to_dict(), "spool"))  # fmt: skip


class _StoreReader:
    """Reads uploaded sidecars from the store; after one failure it stops trying (a listing of many old clips
    must not wait out one timeout per clip while the store is down)."""

    def __init__(self, ctx: HubContext) -> None:
        self.ctx, self.down = ctx, False

    def details(self, key: str | None) -> ClipDetails | None:
        if key is None or self.down:
            return None
        try:
            return ClipDetails.from_sidecar(json.loads(self.ctx.store.get_object(key)), "store")
        except StoreError as exc:
            log.warning("cannot read the sidecar %s from the store (%s); its events are unknown", key, exc)
            self.down = True
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("the stored sidecar %s is unreadable (%s); its events are unknown", key, exc)
        return None
