"""``LocalStore``: the object store as a directory tree, the embedded default when there is no S3.

Layout under ``root``: ``objects/<key>`` holds the bytes, ``meta/<key>.json`` the record (size, etag, sha256,
content type, metadata, tags), ``tmp/`` the files being written. Every write goes to ``tmp/``, is fsynced, then
renamed into place and the directory fsynced, so a crash never exposes a partial file. The meta file is the
commit point: an object is visible (listed, stat-able) only once its meta file exists, so bytes renamed in by a
put that crashed before its meta rename stay invisible until the key is written again. A crash in the middle of
*overwriting* a key can pair new bytes with the old record; reads verify the sha256 and raise ``BadDigest``
rather than return them, and re-putting the key repairs it (uploads are idempotent by key).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, Protocol

from .store import (
    BAD_DIGEST,
    DEFAULT_CONTENT_TYPE,
    KEY_CONFLICT,
    NO_SUCH_KEY,
    ObjectInfo,
    ObjectStore,
    StoreError,
    validate_key,
    validate_metadata,
    validate_tags,
)

CHUNK = 1024 * 1024
STALE_TMP_S = 3600.0  # temp files older than this at start-up are leftovers of a crash
INTERNAL_ERROR = "InternalError"


class LocalStore(ObjectStore):
    """Thread-safe; one lock serialises renames and deletes, while hashing and copying bytes happen outside it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._objects = self.root / "objects"
        self._meta = self.root / "meta"
        self._tmp = self.root / "tmp"
        for path in (self._objects, self._meta, self._tmp):
            path.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._remove_stale_temps()

    # -- writes ---------------------------------------------------------------------------------

    def put_object(
        self,
        key: str,
        path: Path,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        record = _new_record(validate_key(key), content_type, metadata, tags)
        with open(path, "rb") as src:
            tmp = self._write_temp(src, record)
        return self._commit(key, tmp, record)

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        record = _new_record(validate_key(key), content_type, metadata, tags)
        tmp = self._write_temp(_BytesReader(data), record)
        return self._commit(key, tmp, record)

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        clean = validate_tags(tags)
        with self._lock:
            record = self._read_record(validate_key(key))
            record["tags"] = clean
            self._write_json(self._meta_path(key), record)

    def remove_objects(self, keys: Iterable[str]) -> list[StoreError]:
        errors: list[StoreError] = []
        for key in keys:
            try:
                self._remove_one(validate_key(key))
            except StoreError as exc:
                errors.append(exc)
            except OSError as exc:
                errors.append(StoreError(INTERNAL_ERROR, str(exc), key=key))
        return errors

    # -- reads ----------------------------------------------------------------------------------

    def stat_object(self, key: str) -> ObjectInfo:
        with self._lock:
            return _info(self._read_record(validate_key(key)), with_tags=False)

    def get_tags(self, key: str) -> dict[str, str]:
        with self._lock:
            return dict(self._read_record(validate_key(key))["tags"])

    def get_object(self, key: str) -> bytes:
        record, src = self._open(validate_key(key))
        with src:
            data = src.read()
        _check_digest(record, hashlib.sha256(data).hexdigest())
        return data

    def fget_object(self, key: str, dest: Path) -> ObjectInfo:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        record, src = self._open(validate_key(key))
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.part"
        try:
            with src, open(tmp, "wb") as out:
                digest = _copy(src, out, hashlib.sha256())
            _check_digest(record, digest.hexdigest())
            os.replace(tmp, dest)
            _fsync_dir(dest.parent)
        finally:
            tmp.unlink(missing_ok=True)
        return _info(record, with_tags=False)

    def list_objects(self, prefix: str = "", *, with_tags: bool = False) -> Iterator[ObjectInfo]:
        for key in self._keys_under(prefix):
            try:
                with self._lock:
                    record = self._read_record(key)
            except StoreError:
                continue  # removed while we were listing
            yield _info(record, with_tags=with_tags)

    def local_file(self, key: str) -> Path | None:
        """The committed object's file (None when absent): what a local clip link serves, Range requests and all."""
        validate_key(key)
        path = self._object_path(key)
        return path if self._meta_path(key).is_file() and path.is_file() else None

    # -- internals ------------------------------------------------------------------------------

    def _object_path(self, key: str) -> Path:
        return self._objects.joinpath(*key.split("/"))

    def _meta_path(self, key: str) -> Path:
        return self._meta.joinpath(*key.split("/")).with_name(key.rsplit("/", 1)[-1] + ".json")

    def _write_temp(self, src: _Reader, record: dict[str, Any]) -> Path:
        # Hashing and copying happen before taking the lock: they are the slow part.
        tmp = self._tmp / f"{uuid.uuid4().hex}.part"
        md5, sha = hashlib.md5(), hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") as out:
                while chunk := src.read(CHUNK):
                    md5.update(chunk)
                    sha.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        record.update(size=size, etag=md5.hexdigest(), sha256=sha.hexdigest())
        return tmp

    def _commit(self, key: str, tmp: Path, record: dict[str, Any]) -> ObjectInfo:
        obj, meta = self._object_path(key), self._meta_path(key)
        try:
            with self._lock:
                self._make_parents(key, obj, meta)
                os.replace(tmp, obj)
                _fsync_dir(obj.parent)
                self._write_json(meta, record)  # the commit point
        finally:
            tmp.unlink(missing_ok=True)
        return _info(record, with_tags=True)

    def _make_parents(self, key: str, obj: Path, meta: Path) -> None:
        # S3 allows both "a" and "a/b"; a filesystem cannot, so say so clearly instead of an OSError.
        try:
            _mkdirs(obj.parent, self._objects)
            _mkdirs(meta.parent, self._meta)
        except (FileExistsError, NotADirectoryError):
            raise StoreError(KEY_CONFLICT, "a parent of this key is an existing object", key=key) from None
        if obj.is_dir() or meta.is_dir():
            raise StoreError(KEY_CONFLICT, "this key is a prefix of existing objects", key=key)

    def _write_json(self, path: Path, record: dict[str, Any]) -> None:
        tmp = self._tmp / f"{uuid.uuid4().hex}.json.part"
        try:
            with open(tmp, "w", encoding="utf-8") as out:
                json.dump(record, out, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        finally:
            tmp.unlink(missing_ok=True)

    def _read_record(self, key: str) -> dict[str, Any]:
        try:
            with open(self._meta_path(key), encoding="utf-8") as src:
                return json.load(src)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise StoreError(NO_SUCH_KEY, "no such object", key=key) from None
        except (OSError, ValueError) as exc:
            raise StoreError(INTERNAL_ERROR, f"unreadable metadata: {exc}", key=key) from None

    def _open(self, key: str) -> tuple[dict[str, Any], BinaryIO]:
        # Record and file are taken together under the lock, so they belong to the same put; reading
        # the open file afterwards is safe even if the key is replaced meanwhile (rename keeps our inode).
        with self._lock:
            record = self._read_record(key)
            try:
                return record, open(self._object_path(key), "rb")
            except (FileNotFoundError, NotADirectoryError):
                raise StoreError(NO_SUCH_KEY, "object bytes missing", key=key) from None

    def _remove_one(self, key: str) -> None:
        with self._lock:
            meta, obj = self._meta_path(key), self._object_path(key)
            if meta.is_file():
                meta.unlink()  # the record goes first: from here the object is invisible
                _fsync_dir(meta.parent)
                _prune(meta.parent, self._meta)
            if obj.is_file():
                obj.unlink()
                _prune(obj.parent, self._objects)

    def _keys_under(self, prefix: str) -> list[str]:
        # Walk only the deepest directory the prefix names; S3 prefixes are plain string prefixes.
        base = prefix.rpartition("/")[0]
        parts = base.split("/") if base else []
        if any(p in ("", ".", "..") for p in parts):
            return []
        start = self._meta.joinpath(*parts)
        keys = []
        for dirpath, _dirs, files in os.walk(start):
            rel = Path(dirpath).relative_to(self._meta).as_posix()
            for name in files:
                if name.endswith(".json"):
                    key = name[:-5] if rel == "." else f"{rel}/{name[:-5]}"
                    if key.startswith(prefix):
                        keys.append(key)
        return sorted(keys)  # code-point order == S3's UTF-8 byte order

    def _remove_stale_temps(self) -> None:
        # Only old ones: another process may share this root and be writing right now.
        cutoff = time.time() - STALE_TMP_S
        for tmp in self._tmp.iterdir():
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except OSError:
                pass


class _Reader(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _BytesReader:
    """Minimal read(n) over bytes without copying them into a BytesIO."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def read(self, size: int) -> bytes:
        chunk = self._view[self._pos : self._pos + size]
        self._pos += len(chunk)
        return bytes(chunk)


def _new_record(
    key: str, content_type: str, metadata: Mapping[str, str] | None, tags: Mapping[str, str] | None
) -> dict[str, Any]:
    return {
        "key": key,
        "content_type": content_type or DEFAULT_CONTENT_TYPE,
        "metadata": validate_metadata(metadata),
        "tags": validate_tags(tags),
        "last_modified": datetime.now(UTC).isoformat(),
    }


def _info(record: dict[str, Any], *, with_tags: bool) -> ObjectInfo:
    return ObjectInfo(
        key=record["key"],
        size=record["size"],
        etag=record["etag"],
        sha256=record.get("sha256"),
        last_modified=datetime.fromisoformat(record["last_modified"]),
        content_type=record["content_type"],
        metadata=MappingProxyType(dict(record["metadata"])),
        tags=MappingProxyType(dict(record["tags"])) if with_tags else None,
    )


def _check_digest(record: dict[str, Any], sha256: str) -> None:
    if record.get("sha256") not in (None, sha256):
        raise StoreError(BAD_DIGEST, "stored bytes do not match their sha256; re-put the object", key=record["key"])


def _copy(src: BinaryIO, out: BinaryIO, digest: Any) -> Any:
    while chunk := src.read(CHUNK):
        digest.update(chunk)
        out.write(chunk)
    out.flush()
    os.fsync(out.fileno())
    return digest


def _mkdirs(path: Path, top: Path) -> None:
    # Create each missing level and fsync its parent, so the new directory entries survive a crash too.
    missing = []
    while not path.is_dir() and path != top:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir()
        _fsync_dir(directory.parent)


def _prune(path: Path, top: Path) -> None:
    # Empty directories left by deletes would later block a key of the same name.
    while path != top:
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
