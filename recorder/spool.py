"""Spool layout on disk: clips being written in ``tmp/``, finished clips + sidecars in ``ready/``.

Crash safety comes from ordering, not locks:
  1. the clip is written (fragmented MP4, or Matroska for codecs MP4 cannot hold) in ``tmp/``, with a
     ``<id>.meta.json`` beside it that journals what the file cannot tell (camera, times, the events
     known so far), and fsynced;
  2. it is renamed into ``ready/`` (atomic) and the directory fsynced;
  3. the sidecar is written atomically last — a ready clip without sidecar is unfinished;
  4. the meta file is removed.
:meth:`Spool.recover` repairs whatever a crash left between these steps.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from recorder.events import Event
from recorder.formats import CLIP_EXTENSIONS, MP4
from recorder.sidecar import ClipSidecar, fsync_dir, write_text_atomic
from recorder.writer import ClipWriteError, WrittenClip, remux_file

log = logging.getLogger(__name__)

_META = ".meta.json"
_SALVAGE = ".salvage"  # <id>.salvage.<ext>: a recovery remux in progress; never itself a clip


@dataclass(slots=True)
class ClipMeta:
    """What a recovery needs to know that the clip file cannot tell: written into tmp at clip start."""

    camera: str
    model_versions: dict[str, str] = field(default_factory=dict)
    wall_start: float | None = None  # epoch seconds of the first keyframe
    stream_start: float = 0.0
    events: list[Event] = field(default_factory=list)  # journaled as they start and change

    @classmethod
    def from_dict(cls, data: dict) -> ClipMeta:
        fields = dict(data)
        fields["events"] = [Event.from_dict(e) for e in data.get("events", [])]
        return cls(**fields)


class Spool:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        self.ready_dir = self.root / "ready"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.ready_dir.mkdir(parents=True, exist_ok=True)

    def tmp_path(self, clip_id: str, extension: str = MP4.extension) -> Path:
        return self.tmp_dir / f"{clip_id}{extension}"

    def clip_path(self, clip_id: str, extension: str = MP4.extension) -> Path:
        return self.ready_dir / f"{clip_id}{extension}"

    def _clip_files(self, folder: Path, clip_id: str) -> list[Path]:
        """The clip file(s) of ``clip_id`` in ``folder``, whatever their container."""
        return [p for ext in CLIP_EXTENSIONS if (p := folder / f"{clip_id}{ext}").exists()]

    def sidecar_path(self, clip_id: str) -> Path:
        return self.ready_dir / f"{clip_id}.json"

    def write_meta(self, clip_id: str, meta: ClipMeta) -> None:
        """Journal an open clip's meta (temp file, fsync, rename): call again whenever its events change."""
        write_text_atomic(self.tmp_dir / f"{clip_id}{_META}", json.dumps(asdict(meta)))

    def read_meta(self, clip_id: str) -> ClipMeta | None:
        try:
            data = json.loads((self.tmp_dir / f"{clip_id}{_META}").read_text(encoding="utf-8"))
            return ClipMeta.from_dict(data)
        except (OSError, ValueError, TypeError):
            return None

    def discard(self, clip_id: str) -> None:
        """Remove an unfinished clip from tmp (with its meta)."""
        for path in self._clip_files(self.tmp_dir, clip_id):
            path.unlink(missing_ok=True)
        (self.tmp_dir / f"{clip_id}{_META}").unlink(missing_ok=True)

    def finalize(self, written: WrittenClip, sidecar: ClipSidecar) -> Path:
        """Move a closed clip into ready/ and write its sidecar (last). Returns the ready clip path."""
        dst = self.clip_path(sidecar.clip_id, written.path.suffix)
        os.replace(written.path, dst)
        fsync_dir(self.ready_dir)
        sidecar.file = dst.name
        sidecar.write_atomic(self.sidecar_path(sidecar.clip_id))
        (self.tmp_dir / f"{sidecar.clip_id}{_META}").unlink(missing_ok=True)
        return dst

    def ready(self) -> list[tuple[Path, ClipSidecar]]:
        """Finished clips, oldest first (clip ids sort by time)."""
        out: list[tuple[Path, ClipSidecar]] = []
        for side in sorted(self.ready_dir.glob("*.json")):
            if side.name.startswith("."):
                continue  # an atomic write in progress
            try:
                sidecar = ClipSidecar.read(side)
            except (OSError, ValueError, TypeError) as exc:
                log.warning("spool: unreadable sidecar %s: %s", side.name, exc)
                continue
            clip = self.ready_dir / sidecar.file
            if clip.exists():
                out.append((clip, sidecar))
        return out

    def remove(self, clip_id: str) -> None:
        # Clip first: a crash in between leaves an orphan sidecar, which recover() deletes, rather
        # than a sidecar-less clip that recover() would re-describe and upload again.
        for path in self._clip_files(self.ready_dir, clip_id):
            path.unlink(missing_ok=True)
        self.sidecar_path(clip_id).unlink(missing_ok=True)

    def usage_bytes(self) -> int:
        total = 0
        for folder in (self.tmp_dir, self.ready_dir):
            for entry in os.scandir(folder):
                try:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:  # renamed or deleted while we scanned (a clip finishing, an upload)
                    continue
        return total

    def recover(self) -> list[Path]:
        """Start-up repair after a crash; returns the ready clips it produced."""
        for junk in self.tmp_dir.glob(f"*{_SALVAGE}.*"):
            junk.unlink(missing_ok=True)
        for junk in list(self.tmp_dir.glob(".*.tmp")) + list(self.ready_dir.glob(".*.tmp")):
            junk.unlink(missing_ok=True)  # torn atomic writes
        recovered: list[Path] = []
        for clip in self._clips_in(self.ready_dir):
            if not self.sidecar_path(clip.stem).exists():
                recovered += self._salvage(clip, clip.stem)
        for clip in self._clips_in(self.tmp_dir):
            if self.sidecar_path(clip.stem).exists():
                self.discard(clip.stem)  # finalized already; the crash came before the tmp cleanup
            else:
                recovered += self._salvage(clip, clip.stem)
        self._drop_orphans()
        return recovered

    @staticmethod
    def _clips_in(folder: Path) -> list[Path]:
        return sorted(p for ext in CLIP_EXTENSIONS for p in folder.glob(f"*{ext}"))

    def _salvage(self, src: Path, clip_id: str) -> list[Path]:
        meta = self.read_meta(clip_id) or ClipMeta(camera="unknown")
        wall = meta.wall_start if meta.wall_start is not None else src.stat().st_mtime
        scratch = self.tmp_dir / f"{clip_id}{_SALVAGE}{src.suffix}"
        try:
            written = remux_file(src, scratch, wall_start=wall, time_start=meta.stream_start)
        except (ClipWriteError, OSError, ValueError) as exc:
            log.error("spool: recovering %s failed (%s); keeping it for the next start", src.name, exc)
            scratch.unlink(missing_ok=True)
            return []
        if written is None:
            log.warning("spool: %s has no readable media; deleted", src.name)
            src.unlink(missing_ok=True)
            self.discard(clip_id)
            return []
        sidecar = ClipSidecar.for_clip(written, clip_id=clip_id, camera=meta.camera, events=meta.events,
                                       model_versions=meta.model_versions, recovered=True)
        path = self.finalize(written, sidecar)  # replaces a sidecar-less ready clip in one rename
        if src != path:
            src.unlink(missing_ok=True)
        log.warning("spool: recovered clip %s of camera %s (%.1f s, %d packets)", clip_id, meta.camera,
                    written.duration_s, written.packets)
        return [path]

    def _drop_orphans(self) -> None:
        for meta in self.tmp_dir.glob(f"*{_META}"):
            clip_id = meta.name[: -len(_META)]
            if not self._clip_files(self.tmp_dir, clip_id):
                meta.unlink(missing_ok=True)
        for side in self.ready_dir.glob("*.json"):
            if not side.name.startswith(".") and not self._clip_files(self.ready_dir, side.stem):
                log.info("spool: removing sidecar %s of a deleted clip", side.name)
                side.unlink(missing_ok=True)

