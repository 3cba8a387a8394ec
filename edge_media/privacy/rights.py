"""Owner rights over their recordings: export everything, erase everything, restrict a camera.

The owner's recordings are found three ways, because each can miss something: the clip index
(what we uploaded), a listing of the store under each of the owner's camera prefixes (objects the
index lost), and the spool (clips not uploaded yet). Erasure removes all of them and the rows that
describe them; what remains is one audit line that says an erasure happened, with no key or id, and
the owner's camera restrictions, which are standing orders about the future and outlive the erasure. The
consent ledger stays too: it is the proof of what the owner agreed to and withdrew (see ``consent``).
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, Literal

from recorder import ClipSidecar, Spool
from uploader import ObjectStore, audit
from uploader.db import Database
from uploader.index import ClipIndex
from uploader.outbox import Outbox

from ..errors import EdgeMediaError
from ..rollout.store import RolloutStore
from .consent import ConsentLedger
from .feedback import create_schema, delete_for_owner, discard_for_owner, disclosures_json, spool_of
from .flags import Flags
from .restrictions import Restriction, Restrictions

log = logging.getLogger(__name__)


class ErasureIncomplete(EdgeMediaError, RuntimeError):
    """Erasure could not remove everything; nothing was forgotten, so running it again finishes it."""


UPLOAD_WAIT_S = 60.0  # how long an erasure waits for the owner's uploads in flight
AWAIT_POLL_S = 0.05
STRAGGLER_ROUNDS = 3


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
    flags: int = 0  # the owner's misdetection flags
    feedback: int = 0  # the owner's samples queued for the model partner, not sent


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
        self.restrictions = Restrictions(db)
        self.consent = ConsentLedger(db, clock=clock)
        self.flags = Flags(db)
        create_schema(db)

    # -- export -----------------------------------------------------------------------------------

    def export(self, scope: OwnerScope, out: BinaryIO, *, fmt: Literal["zip", "tar"] = "zip") -> ExportReport:
        """Stream every clip and sidecar of ``scope`` into ``out`` (any writable stream), plus a
        ``manifest.json`` listing each file with its sha256, camera and retention deadline, and
        ``consent.json``: the owner's consent history and the notices agreed to."""
        items = list(self._items(scope))
        manifest, total = [], 0
        with _archive(out, fmt) as add:
            for item in items:
                data = self._read(item)
                total += len(data)
                add(item.name, data)
                manifest.append({"file": item.name, "source": item.source, "size": len(data),
                                 "sha256": hashlib.sha256(data).hexdigest(), **item.meta})
            add("flags.json", self.flags.export_json(scope.owner))  # what the owner reported about their clips
            add("manifest.json", json.dumps({"owner": scope.owner, "exported_at": self.clock(),
                                             "files": manifest}, indent=2).encode())
            add("consent.json", json.dumps(self.consent.export(scope.owner), indent=2).encode())
            add("feedback-disclosures.json", disclosures_json(self.db, scope.owner))  # what went to the partner
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
                meta: dict[str, object] = {"key": info.key, "camera": names.get(info.key.split("/")[1])}
                if indexed is not None:
                    meta |= {"clip_id": indexed.clip_id, "retain_until": indexed.retain_until}
                yield _Item(info.key, "store", info.key, meta)
        for obj in self.index.for_owner(scope.owner):
            if obj.key not in seen:  # indexed but not listed: report it, it may be mid-deletion
                log.warning("export: indexed object %s is missing from the store", obj.key)
        for path, sidecar in self._spool_clips(scope):
            spooled: dict[str, object] = {"camera": sidecar.camera, "clip_id": sidecar.clip_id, "uploaded": False}
            yield _Item(f"spool/{sidecar.camera}/{path.name}", "spool", str(path), spooled)
            side = self.spool.sidecar_path(sidecar.clip_id)
            yield _Item(f"spool/{sidecar.camera}/{side.name}", "spool", str(side), spooled)

    def _read(self, item: _Item) -> bytes:
        return self.store.get_object(item.ref) if item.source == "store" else Path(item.ref).read_bytes()

    def _spool_clips(self, scope: OwnerScope) -> list[tuple[Path, ClipSidecar]]:
        return [(p, sc) for p, sc in self.spool.ready() if sc.camera in scope.cameras]

    # -- erasure ----------------------------------------------------------------------------------

    def erase(self, scope: OwnerScope, *, outbox: Outbox, upload_wait_s: float = UPLOAD_WAIT_S) -> EraseReport:
        """Delete every recording of ``scope``: store objects, spool clips, outbox and index rows, and the
        audit lines that named them (its restrictions stay in force). Exclusive with the upload worker, in
        this process or another: no upload of the owner starts once the erasure's marker commits, the ones
        in flight are waited for (up to ``upload_wait_s``), and the store is listed again after the commit
        for anything that still landed. Safe to repeat; partial failures raise after logging."""
        marker = outbox.begin_erasure(scope.owner)
        try:
            self._await_uploads(scope, outbox, upload_wait_s)
            report = self._erase(scope, outbox)
            stragglers = self._remove_stragglers(scope)
        finally:
            outbox.end_erasure(marker)
        log.info("erased %d objects and %d spooled clips of one owner", report.objects + stragglers,
                 report.spool_clips)  # fmt: skip
        return replace(report, objects=report.objects + stragglers)

    def _await_uploads(self, scope: OwnerScope, outbox: Outbox, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while outbox.count_inflight(owner=scope.owner):
            if time.monotonic() >= deadline:
                # A worker that died mid-upload leaves its row inflight until the next start; a live one
                # finds its row gone when it finishes and removes what it put (and we re-list below).
                log.warning("erasure: an upload of this owner is still in flight after %.0f s; erasing anyway",
                            wait_s)  # fmt: skip
                return
            time.sleep(AWAIT_POLL_S)

    def _erase(self, scope: OwnerScope, outbox: Outbox) -> EraseReport:
        keys = {o.key for o in self.index.for_owner(scope.owner)} | self._listed(scope)
        self._remove(keys)
        spool_clips = self._spool_clips(scope)
        for _, sidecar in spool_clips:
            self.spool.remove(sidecar.clip_id)
        with self.db.tx() as conn:
            rows = outbox.delete_for_owner(conn, scope.owner)
            for item in rows:  # queued clips whose files may still be in the spool
                for p in (Path(item.clip_path), Path(item.sidecar_path)):
                    p.unlink(missing_ok=True)
            index_rows = ClipIndex.delete_for_owner(conn, scope.owner)
            flags = Flags.delete_for_owner(conn, scope.owner)
            RolloutStore.delete_events(conn, scope.cameras.values())
            samples = delete_for_owner(conn, scope.owner)
            audit.delete_for_owner(conn, scope.owner, key_prefixes=scope.prefixes)
            audit.record(conn, "erase", detail=f"{len(keys)} objects, {len(spool_clips)} spool clips")
        discard_for_owner(spool_of(self.db), scope.owner, samples)
        return EraseReport(len(keys), len(spool_clips), len(rows), index_rows, flags, len(samples))

    def _remove_stragglers(self, scope: OwnerScope) -> int:
        """After the commit: objects of the owner that landed while we erased (an upload we stopped waiting
        for). Repeated until a listing comes back empty, a few times at most."""
        removed = 0
        for _ in range(STRAGGLER_ROUNDS):
            keys = self._listed(scope)
            if not keys:
                return removed
            log.warning("erasure: %d objects of this owner appeared while erasing; removing them", len(keys))
            self._remove(keys)
            removed += len(keys)
        if self._listed(scope):
            raise ErasureIncomplete("erasure incomplete: objects of this owner keep appearing in the store "
                               "(is another hub uploading them?); run it again")
        return removed

    def _listed(self, scope: OwnerScope) -> set[str]:
        return {info.key for prefix in scope.prefixes for info in self.store.list_objects(prefix)}

    def _remove(self, keys: set[str]) -> None:
        errors = self.store.remove_objects(sorted(keys))
        if errors:
            raise ErasureIncomplete(f"erasure incomplete: {len(errors)} objects could not be deleted "
                               f"(first: {errors[0].code}); nothing was forgotten, run it again")

    # -- restriction ------------------------------------------------------------------------------

    def restrict(self, scope: OwnerScope, camera: str) -> None:
        """Stop processing and uploading new clips of ``camera``; nothing is deleted."""
        with self.db.tx() as conn:
            Restrictions.add(conn, Restriction(scope.cameras[camera], scope.owner, self.clock()))
            audit.record(conn, "restrict", owner=scope.owner, detail=scope.cameras[camera])

    def unrestrict(self, scope: OwnerScope, camera: str) -> None:
        with self.db.tx() as conn:
            Restrictions.remove(conn, scope.cameras[camera])
            audit.record(conn, "unrestrict", owner=scope.owner, detail=scope.cameras[camera])

    def restricted(self) -> set[str]:
        """Camera hashes currently restricted."""
        return self.restrictions.restricted_hashes()


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
