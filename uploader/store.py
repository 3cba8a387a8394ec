"""The object-store interface the uploader writes through, shaped after S3 (and minio-py).

Implementations: ``LocalStore`` (a directory; the embedded default) and an S3 store (minio). Both share the
key/tag/metadata validation here so that an object accepted by one is accepted by the other.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only S3 stores have lifecycle rules; LocalStore must not need minio to import
    from minio.lifecycleconfig import LifecycleConfig

DEFAULT_CONTENT_TYPE = "application/octet-stream"

# Error codes, named as S3 names them so callers can catch the same code from either store.
NO_SUCH_KEY = "NoSuchKey"
NO_SUCH_BUCKET = "NoSuchBucket"
ACCESS_DENIED = "AccessDenied"
INVALID_KEY = "InvalidKey"
INVALID_TAG = "InvalidTag"
INVALID_ARGUMENT = "InvalidArgument"  # e.g. bad user metadata
BAD_DIGEST = "BadDigest"  # stored bytes no longer match their recorded checksum
KEY_CONFLICT = "KeyConflict"  # LocalStore only: "a" and "a/b" cannot both be files
NOT_IMPLEMENTED = "NotImplemented"  # the store lacks the feature (e.g. lifecycle rules on LocalStore)

MAX_KEY_BYTES = 1024
MAX_TAGS = 10
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_METADATA_BYTES = 2048  # S3's limit on user-defined metadata
# S3 tag charset: letters, digits, spaces and + - = . _ : / @ (unicode letters/digits allowed).
_TAG_RE = re.compile(r"^[\w\s+\-=.:/@]*$", re.UNICODE)
# No "_": some S3 servers turn it into "-" and proxies (nginx) drop such headers.
_META_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class StoreError(Exception):
    """The one exception of every store. ``code`` is S3's error code; catch only the codes you expect."""

    def __init__(self, code: str, message: str = "", *, key: str | None = None) -> None:
        self.code = code
        self.message = message or code
        self.key = key
        where = f" (key {key!r})" if key is not None else ""
        super().__init__(f"{code}: {self.message}{where}")


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one object. ``etag`` is unquoted (md5 hex for single-part uploads);
    ``sha256`` is hex or None when the store did not record it; ``tags`` is None when not fetched."""

    key: str
    size: int
    etag: str
    sha256: str | None
    last_modified: datetime
    content_type: str
    metadata: Mapping[str, str]
    tags: Mapping[str, str] | None


class ObjectStore(abc.ABC):
    """A flat key -> bytes store with metadata and tags. Implementations must be thread-safe."""

    @abc.abstractmethod
    def put_object(
        self,
        key: str,
        path: Path,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Upload the file at ``path``; replaces an existing object atomically."""

    @abc.abstractmethod
    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Upload ``data``; replaces an existing object atomically."""

    @abc.abstractmethod
    def get_object(self, key: str) -> bytes:
        """The object's bytes; StoreError(NoSuchKey) if absent."""

    @abc.abstractmethod
    def fget_object(self, key: str, dest: Path) -> ObjectInfo:
        """Download to ``dest`` (written atomically, parents created)."""

    @abc.abstractmethod
    def stat_object(self, key: str) -> ObjectInfo:
        """Info without the bytes (``tags`` None); StoreError(NoSuchKey) if absent."""

    @abc.abstractmethod
    def list_objects(self, prefix: str = "", *, with_tags: bool = False) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (a plain string prefix), sorted by key."""

    @abc.abstractmethod
    def remove_objects(self, keys: Iterable[str]) -> list[StoreError]:
        """Delete in batches; returns the per-key failures. A missing key is not a failure (S3 semantics)."""

    @abc.abstractmethod
    def get_tags(self, key: str) -> dict[str, str]:
        """The object's tags; StoreError(NoSuchKey) if absent."""

    @abc.abstractmethod
    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        """Replace (not merge) the object's tags."""

    def presigned_get_object(self, key: str, *, expires_s: int) -> str:
        """A URL anyone holding it can GET the object with, for ``expires_s`` seconds (S3 presigned GET).
        A store that cannot sign URLs says so with NOT_IMPLEMENTED (its objects are served another way)."""
        raise StoreError(NOT_IMPLEMENTED, f"{type(self).__name__} cannot presign URLs", key=key)

    def local_file(self, key: str) -> Path | None:
        """The object's bytes as a file on this machine, when the store keeps them as one (else None)."""
        return None

    # Bucket lifecycle rules are an S3 backstop for retention (the sweeper is the prompt path); a store without
    # them says so with a code the caller can catch instead of silently keeping objects forever.
    def set_bucket_lifecycle(self, config: LifecycleConfig) -> None:
        """Replace the bucket's lifecycle configuration."""
        raise StoreError(NOT_IMPLEMENTED, f"{type(self).__name__} has no bucket lifecycle rules")

    def get_bucket_lifecycle(self) -> LifecycleConfig | None:
        """The bucket's lifecycle configuration, or None when it has none."""
        raise StoreError(NOT_IMPLEMENTED, f"{type(self).__name__} has no bucket lifecycle rules")

    def delete_bucket_lifecycle(self) -> None:
        """Remove the bucket's lifecycle configuration (no error when it has none)."""
        raise StoreError(NOT_IMPLEMENTED, f"{type(self).__name__} has no bucket lifecycle rules")


def validate_key(key: str) -> str:
    """Reject keys that are unsafe as paths or invalid in S3; returns the key."""
    if not isinstance(key, str) or not key:
        raise StoreError(INVALID_KEY, "key must be a non-empty string", key=str(key))
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise StoreError(INVALID_KEY, f"key longer than {MAX_KEY_BYTES} bytes", key=key[:64])
    if key.startswith("/"):
        raise StoreError(INVALID_KEY, "key must not start with '/'", key=key)
    if any(ord(ch) < 0x20 or ch in "\x7f\\" for ch in key):
        raise StoreError(INVALID_KEY, "key contains a control character or backslash", key=key)
    for segment in key.split("/"):
        # Empty, "." and ".." segments would alias other keys or escape the root on a filesystem.
        if segment in ("", ".", ".."):
            raise StoreError(INVALID_KEY, "key has an empty, '.' or '..' segment", key=key)
    return key


def validate_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """S3 object-tag rules; returns a plain dict copy."""
    tags = dict(tags or {})
    if len(tags) > MAX_TAGS:
        raise StoreError(INVALID_TAG, f"at most {MAX_TAGS} tags per object (got {len(tags)})")
    for name, value in tags.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise StoreError(INVALID_TAG, f"tag keys and values must be strings: {name!r}={value!r}")
        if not 1 <= len(name) <= MAX_TAG_KEY or len(value) > MAX_TAG_VALUE:
            raise StoreError(INVALID_TAG, f"tag key 1..{MAX_TAG_KEY} chars, value <= {MAX_TAG_VALUE}: {name!r}")
        if name.startswith("aws:"):
            raise StoreError(INVALID_TAG, f"tag keys must not start with 'aws:': {name!r}")
        if not _TAG_RE.match(name) or not _TAG_RE.match(value):
            raise StoreError(INVALID_TAG, f"tag has characters outside letters, digits, space, +-=._:/@: {name!r}")
    return tags


def validate_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata travels as HTTP headers: lower-case names (S3 lower-cases them anyway, so requiring
    it keeps LocalStore and S3 round trips identical), printable ASCII values, 2 KiB in all."""
    metadata = dict(metadata or {})
    total = 0
    for name, value in metadata.items():
        if not isinstance(name, str) or not _META_KEY_RE.match(name):
            raise StoreError(INVALID_ARGUMENT, f"metadata name must be lower-case [a-z0-9-]: {name!r}")
        if not isinstance(value, str) or not all(0x20 <= ord(ch) < 0x7F for ch in value):
            raise StoreError(INVALID_ARGUMENT, f"metadata value must be printable ASCII: {name}={value!r}")
        total += len(name) + len(value)
    if total > MAX_METADATA_BYTES:
        raise StoreError(INVALID_ARGUMENT, f"metadata larger than {MAX_METADATA_BYTES} bytes")
    return metadata
