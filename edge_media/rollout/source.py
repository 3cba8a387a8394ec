"""Where releases are read from: a directory (a share, a USB stick) or an S3 bucket (minio).

Both give the same three things: the versions published under ``<prefix>/<name>/``, one small file
(manifest, signature) in memory, and the model file streamed to disk. Neither trusts what it reads: the
caller checks the signature and the hash. Sizes are bounded so a hostile source cannot fill the disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from minio import Minio
from minio.error import S3Error
from urllib3.exceptions import HTTPError

from ..errors import EdgeMediaError
from .release import is_version, release_prefix

_CHUNK = 1 << 20


class SourceUnavailable(EdgeMediaError):
    """The release source cannot be reached or listed right now; nothing was changed."""


class TooLarge(EdgeMediaError):
    """A file is larger than the release allows; the download stopped there."""


class ReleaseSource(Protocol):
    def describe(self) -> str: ...
    def versions(self, name: str) -> list[str]: ...
    def read(self, name: str, version: str, file: str, max_bytes: int) -> bytes | None: ...
    def download(self, name: str, version: str, file: str, dest: Path, max_bytes: int) -> None: ...


class DirectorySource:
    def __init__(self, root: Path, prefix: str = "") -> None:
        self.root, self.prefix = Path(root), prefix

    def describe(self) -> str:
        return f"directory {self.root / self.prefix.strip('/')}"

    def _path(self, name: str, version: str | None = None, file: str = "") -> Path:
        return self.root / release_prefix(self.prefix, name, version) / file

    def versions(self, name: str) -> list[str]:
        base = self._path(name)
        if not self.root.is_dir():
            raise SourceUnavailable(f"release {self.describe()} is not a readable directory")
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and is_version(p.name))

    def read(self, name: str, version: str, file: str, max_bytes: int) -> bytes | None:
        path = self._path(name, version, file)
        try:
            with open(path, "rb") as fh:
                data = fh.read(max_bytes + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceUnavailable(f"cannot read {path}: {exc.strerror or exc}") from None
        if len(data) > max_bytes:
            raise TooLarge(f"{path} is larger than {max_bytes} bytes")
        return data

    def download(self, name: str, version: str, file: str, dest: Path, max_bytes: int) -> None:
        path = self._path(name, version, file)
        try:
            with open(path, "rb") as src, open(dest, "wb") as out:
                _copy_bounded(src.read, out, max_bytes, str(path))
        except FileNotFoundError:
            raise SourceUnavailable(f"{path} is missing") from None
        except OSError as exc:
            raise SourceUnavailable(f"cannot copy {path}: {exc.strerror or exc}") from None


class S3Source:
    def __init__(self, client: Minio, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.strip('/')}"

    def versions(self, name: str) -> list[str]:
        base = release_prefix(self.prefix, name)
        try:
            names = [o.object_name for o in self.client.list_objects(self.bucket, prefix=base)]
        except (S3Error, HTTPError, OSError) as exc:
            raise SourceUnavailable(f"cannot list {self.describe()}: {_reason(exc)}") from None
        found = {n[len(base):].strip("/") for n in names if n}
        return sorted(v for v in found if is_version(v))

    def read(self, name: str, version: str, file: str, max_bytes: int) -> bytes | None:
        key = release_prefix(self.prefix, name, version) + file
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise SourceUnavailable(f"cannot read {key}: {_reason(exc)}") from None
        except (HTTPError, OSError) as exc:
            raise SourceUnavailable(f"cannot read {key}: {_reason(exc)}") from None
        try:
            data = response.read(max_bytes + 1)
        finally:
            response.close()
            response.release_conn()
        if len(data) > max_bytes:
            raise TooLarge(f"{key} is larger than {max_bytes} bytes")
        return data

    def download(self, name: str, version: str, file: str, dest: Path, max_bytes: int) -> None:
        key = release_prefix(self.prefix, name, version) + file
        try:
            response = self.client.get_object(self.bucket, key)
            try:
                with open(dest, "wb") as out:
                    _copy_bounded(lambda n: response.read(n), out, max_bytes, key)
            finally:
                response.close()
                response.release_conn()
        except (S3Error, HTTPError) as exc:
            raise SourceUnavailable(f"cannot download {key}: {_reason(exc)}") from None


def _copy_bounded(read, out, max_bytes: int, what: str) -> None:
    total = 0
    while chunk := read(_CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise TooLarge(f"{what} is larger than the {max_bytes} bytes its manifest allows")
        out.write(chunk)
    out.flush()
    os.fsync(out.fileno())


def _reason(exc: BaseException) -> str:
    return getattr(exc, "code", None) or exc.__class__.__name__ + (f": {exc}" if str(exc) else "")
