"""Owner rights over their recordings: export everything, erase everything, restrict a camera.

The owner's recordings are found three ways, because each can miss something: the clip index
(what we uploaded), a listing of the store under each of the owner's camera prefixes (objects the
index lost), and the spool (clips not uploaded yet). Erasure removes all of them and the rows that
describe them; what remains is one audit line that says an erasure happened, with no key or id.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from recorder import ClipSidecar, Spool
from uploader import ObjectStore, audit
from uploader.db import Database
from uploader.index import ClipIndex

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OwnerScope:
    """One owner's cameras, by name and by the pseudonymous hash used in keys and tags."""

    owner: str
    cameras: dict[str, str]  # camera name -> camera hash

    @property
    def prefixes(self) -> list[str]:
        return [f"clips/{h}/" for h in sorted(self.cameras.values())]


@dataclass(frozen=True)
class ExportReport:
    objects: int
    spool_clips: int
    bytes: int
    manifest: list[dict] = field(repr=False)


@dataclass(frozen=True)
class EraseReport:
    objects: int
    spool_clips: int
    outbox_rows: int
    index_rows: int


@dataclass(frozen=True)
class _Item:
    name: str  # path inside the archive
    source: str  # store | spool
    ref: str  # object key or spool path
    meta: dict


class OwnerRights:
    def __init__(self, store: ObjectStore, spool: Spool, db: Database, *, clock=time.time) -> None:
        self.store, self.spool, self.db, self.clock = store, spool, db, clock
        self.index = ClipIndex(db)

    # -- export -----------------------------------------------------------------------------------

    def export(self, scope: OwnerScope, out: BinaryIO, *, fmt: Literal["zip", "tar"] = "zip") -> ExportReport:
        """Stream every clip and sidecar of ``scope`` into ``out`` (any writable stream), plus a
        ``manifest.json`` listing each file with its sha256, camera and retention deadline."""
        items = list(self._items(scope))
        manifest, total = [], 0
        with _archive(out, fmt) as add:
            for item in items:
                data = self._read(item)
                total += len(data)
                add(item.name, data)
                manifest.append({"file": item.name, "source": item.source, "size": len(data),
                                 "sha256": hashlib.sha256(data).hexdigest(), **item.meta})
            add("manifest.json", json.dumps({"owner": scope.owner, "exported_at": self.clock(),
                                             "files": manifest}, indent=2).encode())
        with self.db.tx() as conn:
            audit.record(conn, "export", owner=scope.owner, detail=f"{len(manifest)} files, {total} bytes")
        spool_n = sum(1 for i in items if i.source == "spool")
        return ExportReport(len(items) - spool_n, spool_n, total, manifest)

    def _items(self, scope: OwnerScope) -> Iterator[_Item]:
        names = {h: n for n, h in scope.cameras.items()}
        seen: set[str] = set()
        for prefix in scope.prefixes:
            for info in self.store.list_objects(prefix):
                seen.add(info.key)
                indexed = self.index.get(info.key)
                meta = {"key": info.key, "camera": names.get(info.key.split("/")[1])}
                if indexed is not None:
                    meta |= {"clip_id": indexed.clip_id, "retain_until": indexed.retain_until}
                yield _Item(info.key, "store", info.key, meta)
        for obj in self.index.for_owner(scope.owner):
            if obj.key not in seen:  # indexed but not listed: report it, it may be mid-deletion
                log.warning("export: indexed object %s is missing from the store", obj.key)
        for path, sidecar in self._spool_clips(scope):
            meta = {"camera": sidecar.camera, "clip_id": sidecar.clip_id, "uploaded": False}
            yield _Item(f"spool/{sidecar.camera}/{path.name}", "spool", str(path), meta)
            side = self.spool.sidecar_path(sidecar.clip_id)
            yield _Item(f"spool/{sidecar.camera}/{side.name}", "spool", str(side), meta)

    def _read(self, item: _Item) -> bytes:
        return self.store.get_object(item.ref) if item.source == "store" else Path(item.ref).read_bytes()

    def _spool_clips(self, scope: OwnerScope) -> list[tuple[Path, ClipSidecar]]:
        return [(p, sc) for p, sc in self.spool.ready() if sc.camera in scope.cameras]

    # -- erasure ----------------------------------------------------------------------------------

    def erase(self, scope: OwnerScope, *, outbox=None) -> EraseReport:
        """Delete every recording of ``scope``: store objects, spool clips, outbox and index rows,
        and the audit lines that named them. Safe to repeat; partial failures raise after logging."""
        keys = {o.key for o in self.index.for_owner(scope.owner)}
        for prefix in scope.prefixes:
            keys |= {info.key for info in self.store.list_objects(prefix)}
        errors = self.store.remove_objects(sorted(keys))
        if errors:
            raise RuntimeError(f"erasure incomplete: {len(errors)} objects could not be deleted "
                               f"(first: {errors[0].code}); nothing was forgotten, run it again")
        spool_clips = self._spool_clips(scope)
        for _, sidecar in spool_clips:
            self.spool.remove(sidecar.clip_id)
        with self.db.tx() as conn:
            rows = outbox.delete_for_owner(conn, scope.owner) if outbox is not None else []
            for item in rows:  # queued clips whose files may still be in the spool
                for p in (Path(item.clip_path), Path(item.sidecar_path)):
                    p.unlink(missing_ok=True)
            index_rows = conn.execute("DELETE FROM objects WHERE owner = ?", (scope.owner,)).rowcount
            conn.execute("DELETE FROM audit WHERE owner = ?", (scope.owner,))
            for camera_hash in scope.cameras.values():
                conn.execute("DELETE FROM audit WHERE key LIKE ?", (f"clips/{camera_hash}/%",))
                conn.execute("DELETE FROM restrictions WHERE camera_hash = ?", (camera_hash,))
            audit.record(conn, "erase", detail=f"{len(keys)} objects, {len(spool_clips)} spool clips")
        log.info("erased %d objects and %d spooled clips of one owner", len(keys), len(spool_clips))
        return EraseReport(len(keys), len(spool_clips), len(rows), index_rows)

    # -- restriction ------------------------------------------------------------------------------

    def restrict(self, scope: OwnerScope, camera: str) -> None:
        """Stop processing and uploading new clips of ``camera``; nothing is deleted."""
        with self.db.tx() as conn:
            conn.execute("INSERT OR REPLACE INTO restrictions (camera_hash, owner, since) VALUES (?, ?, ?)",
                         (scope.cameras[camera], scope.owner, self.clock()))
            audit.record(conn, "restrict", owner=scope.owner, detail=scope.cameras[camera])

    def unrestrict(self, scope: OwnerScope, camera: str) -> None:
        with self.db.tx() as conn:
            conn.execute("DELETE FROM restrictions WHERE camera_hash = ?", (scope.cameras[camera],))
            audit.record(conn, "unrestrict", owner=scope.owner, detail=scope.cameras[camera])

    def restricted(self) -> set[str]:
        """Camera hashes currently restricted."""
        return {r[0] for r in self.db.query("SELECT camera_hash FROM restrictions")}


class _archive:
    """Context manager yielding ``add(name, data)`` for a streamed zip or tar."""

    def __init__(self, out: BinaryIO, fmt: str) -> None:
        self.out, self.fmt = out, fmt

    def __enter__(self):
        if self.fmt == "zip":
            self._zip = zipfile.ZipFile(self.out, "w", compression=zipfile.ZIP_STORED)  # video is compressed
            return lambda name, data: self._zip.writestr(name, data)
        self._tar = tarfile.open(fileobj=self.out, mode="w|")  # "w|": a stream, never seeks
        return self._add_tar

    def _add_tar(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(data), int(time.time())
        self._tar.addfile(info, io.BytesIO(data))

    def __exit__(self, *exc) -> None:
        (self._zip if self.fmt == "zip" else self._tar).close()
