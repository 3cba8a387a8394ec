"""``S3Store``: the object store on an S3-compatible server (AWS, MinIO, moto) through the ``minio`` client.

Semantics follow ``LocalStore`` (same validation, error codes, ``ObjectInfo``). Uploads are verified against
what the server reports: a single-part ETag must be the md5 of the bytes sent; a multipart ETag the md5 of the
part md5s ("-N"), and ``stat_object`` must report the size and the sha256 we store in ``x-amz-meta-sha256``.
Reads check that sha256 too. Any mismatch is ``BadDigest``. The bucket is checked (and created when allowed)
lazily, on first use and whenever the server says it is gone, so a store built while the server was down, or
whose server lost its state, recovers by itself. Credentials live only inside the minio client: not in the
store's attributes or repr, nor in errors (which carry S3's code and message, never the request).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO, TypeVar

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import Tags
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import check_bucket_name
from minio.lifecycleconfig import LifecycleConfig
from minio.time import from_http_header

from .checksums import Digest, file_digest
from .store import (
    ACCESS_DENIED,
    BAD_DIGEST,
    DEFAULT_CONTENT_TYPE,
    INVALID_ARGUMENT,
    INVALID_KEY,
    INVALID_TAG,
    KEY_CONFLICT,
    NO_SUCH_BUCKET,
    NO_SUCH_KEY,
    ObjectInfo,
    ObjectStore,
    StoreError,
    validate_key,
    validate_metadata,
    validate_tags,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MIB = 1024 * 1024
DEFAULT_PART_SIZE = 16 * MIB
MIN_PART_SIZE = 5 * MIB  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 * 1024 * MIB
DELETE_BATCH = 1000  # S3's limit on keys per DeleteObjects request
CHUNK = 1024 * 1024
SHA256_META = "sha256"  # user-metadata name (x-amz-meta-sha256) holding the hex sha256 of the bytes
_META_PREFIX = "x-amz-meta-"

CONNECTION_ERROR = "ConnectionError"
INTERNAL_ERROR = "InternalError"
INVALID_RESPONSE = "InvalidResponse"
INVALID_BUCKET_NAME = "InvalidBucketName"

# Codes a retry cannot fix: the outbox reports these and stops, instead of backing off forever. Everything
# else (connection errors, 5xx, SlowDown, RequestTimeTooSkewed while the clock syncs, BadDigest) is retryable.
PERMANENT_CODES = frozenset(
    {ACCESS_DENIED, "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "AccountProblem"}
    # NoSuchBucket only surfaces when create_bucket is off; BucketAlreadyExists: another account owns the name.
    | {NO_SUCH_BUCKET, INVALID_BUCKET_NAME, "BucketAlreadyExists"}
    | {INVALID_KEY, INVALID_TAG, INVALID_ARGUMENT, KEY_CONFLICT, "KeyTooLongError", "MetadataTooLarge"}
    | {"EntityTooLarge", "InvalidRequest", "MethodNotAllowed", "NotImplemented"}
)


def is_permanent(error: StoreError) -> bool:
    """True when retrying the same request cannot succeed (bad credentials, bad bucket, bad input)."""
    return error.code in PERMANENT_CODES


class S3Store(ObjectStore):
    """Thread-safe (the minio client is); one lock only guards the lazy bucket check."""

    def __init__(
        self, *, endpoint: str, access_key: str, secret_key: str, bucket: str, region: str = "us-east-1",
        secure: bool = True, part_size: int = DEFAULT_PART_SIZE, create_bucket: bool = True,
        connect_timeout: float = 5.0, read_timeout: float = 30.0,
    ) -> None:  # fmt: skip
        if not access_key or not secret_key:
            raise ValueError("S3Store needs both an access key and a secret key")
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be {MIN_PART_SIZE}..{MAX_PART_SIZE} bytes, got {part_size}")
        try:
            check_bucket_name(bucket, strict=True)
        except ValueError as exc:
            raise StoreError(INVALID_BUCKET_NAME, f"invalid bucket name {bucket!r}: {exc}") from None
        self.endpoint, self.bucket, self.region, self.secure = endpoint, bucket, region, secure
        self.part_size, self.create_bucket = part_size, create_bucket
        # With the region given, minio skips its GetBucketLocation round trip.
        http = _http_client(connect_timeout, read_timeout)
        self._client = Minio(endpoint, access_key, secret_key, secure=secure, region=region, http_client=http)
        self._lock = threading.Lock()
        self._bucket_ready = False

    def __repr__(self) -> str:
        return f"S3Store(endpoint={self.endpoint!r}, bucket={self.bucket!r}, secure={self.secure})"


    def ensure_bucket(self) -> None:
        """Check the bucket (create it when allowed) unless already done; StoreError(NoSuchBucket) if absent."""
        if self._bucket_ready:
            return
        with self._lock, self._translate(None):
            if self._bucket_ready:
                return
            if not self._bucket_exists():
                if not self.create_bucket:
                    why = f"bucket {self.bucket!r} does not exist and create_bucket is off"
                    raise StoreError(NO_SUCH_BUCKET, why)
                try:
                    self._client.make_bucket(self.bucket)
                    log.info("created bucket %s on %s", self.bucket, self.endpoint)
                except S3Error as exc:
                    if exc.code != "BucketAlreadyOwnedByYou":  # another process won the race: fine
                        raise
            self._bucket_ready = True

    def _bucket_exists(self) -> bool:
        try:
            return self._client.bucket_exists(self.bucket)
        except S3Error as exc:
            if exc.code != ACCESS_DENIED:
                raise
        # Least-privilege keys (put/get/delete objects only) may not HEAD the bucket. Assume it exists: if it
        # does not, or the keys are wrong, the real request says so with a better code than HEAD's bare 403.
        log.info("cannot check bucket %s (AccessDenied); assuming it exists", self.bucket)
        return True


    def put_object(
        self, key: str, path: Path, *, content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None, tags: Mapping[str, str] | None = None,
    ) -> ObjectInfo:  # fmt: skip
        return self._put(key, lambda: open(path, "rb"), content_type, metadata, tags)

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: Mapping[str, str] | None = None, tags: Mapping[str, str] | None = None,
    ) -> ObjectInfo:  # fmt: skip
        return self._put(key, lambda: io.BytesIO(data), content_type, metadata, tags)

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        validate_key(key)
        clean = validate_tags(tags)
        if clean:
            self._call(lambda: self._client.set_object_tags(self.bucket, key, _to_tags(clean)), key=key)
        else:  # S3 rejects an empty tag set on PUT ?tagging; deleting the set is the same end state
            self._call(lambda: self._client.delete_object_tags(self.bucket, key), key=key)

    def remove_objects(self, keys: Iterable[str]) -> list[StoreError]:
        """Per-key failures are returned; a failure of a whole request (server down) raises StoreError."""
        errors: list[StoreError] = []
        batch: list[DeleteObject] = []
        for key in keys:
            try:
                batch.append(DeleteObject(validate_key(key)))
            except StoreError as exc:
                errors.append(exc)
            if len(batch) == DELETE_BATCH:
                errors += self._remove_batch(batch)
                batch = []
        if batch:
            errors += self._remove_batch(batch)
        return errors


    def set_bucket_lifecycle(self, config: LifecycleConfig) -> None:
        """Replace the bucket's lifecycle rules (S3 keeps one configuration per bucket, not a list to merge)."""
        self._call(lambda: self._client.set_bucket_lifecycle(self.bucket, config))

    def get_bucket_lifecycle(self) -> LifecycleConfig | None:
        return self._call(lambda: self._client.get_bucket_lifecycle(self.bucket))

    def delete_bucket_lifecycle(self) -> None:
        self._call(lambda: self._client.delete_bucket_lifecycle(self.bucket))

    def stat_object(self, key: str) -> ObjectInfo:
        validate_key(key)
        obj = self._call(lambda: self._client.stat_object(self.bucket, key), key=key)
        return _info_from_headers(key, obj.metadata or {})

    def get_tags(self, key: str) -> dict[str, str]:
        validate_key(key)
        tags = self._call(lambda: self._client.get_object_tags(self.bucket, key), key=key)
        return dict(tags or {})

    def presigned_get_object(self, key: str, *, expires_s: int) -> str:
        # Signed locally with the store's credentials (no request; the region is configured, so minio does not
        # ask the server for it). The URL carries a signature, never the secret key.
        validate_key(key)
        return self._call(lambda: self._client.presigned_get_object(self.bucket, key,
                                                                   expires=timedelta(seconds=expires_s)), key=key)

    def get_object(self, key: str) -> bytes:
        validate_key(key)

        def fetch() -> tuple[bytes, Mapping[str, str]]:
            response = self._client.get_object(self.bucket, key)
            try:
                return response.read(), response.headers
            finally:
                response.close()
                response.release_conn()

        data, headers = self._call(fetch, key=key)
        _check_sha256(key, headers, hashlib.sha256(data).hexdigest())
        return data

    def fget_object(self, key: str, dest: Path) -> ObjectInfo:
        validate_key(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.part"
        try:
            headers, sha256 = self._call(lambda: self._download(key, tmp), key=key)
            _check_sha256(key, headers, sha256)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return _info_from_headers(key, headers)

    def list_objects(self, prefix: str = "", *, with_tags: bool = False) -> Iterator[ObjectInfo]:
        """S3 lists in UTF-8 byte order (LocalStore's order) page by page, so nothing is sorted here. Unlike
        LocalStore, ``metadata`` is empty, ``content_type`` "" and ``sha256`` None: stat_object for those."""
        self.ensure_bucket()
        with self._translate(None):
            for obj in self._client.list_objects(self.bucket, prefix=prefix or None, recursive=True):
                if obj.is_dir or obj.object_name is None:
                    continue
                tags = None
                if with_tags:
                    try:
                        tags = self.get_tags(obj.object_name)
                    except StoreError as exc:
                        if exc.code == NO_SUCH_KEY:
                            continue  # removed while we were listing
                        raise
                modified = obj.last_modified or datetime.now(UTC)
                # A listing carries no user metadata or content type (and so no sha256).
                yield _info(obj.object_name, obj.size or 0, obj.etag, None, modified, "", {}, tags)


    def _put(self, key: str, open_src: Callable[[], BinaryIO], content_type: str,
             metadata: Mapping[str, str] | None, tags: Mapping[str, str] | None) -> ObjectInfo:  # fmt: skip
        validate_key(key)
        meta, clean_tags = validate_metadata(metadata), validate_tags(tags)
        if SHA256_META in meta:
            raise StoreError(INVALID_ARGUMENT, f"metadata name {SHA256_META!r} is reserved for the checksum", key=key)
        with open_src() as src:
            digest = file_digest(src, self.part_size)
        meta[SHA256_META] = digest.sha256
        content_type = content_type or DEFAULT_CONTENT_TYPE

        def upload() -> str | None:
            # What fput_object does, but with the size we hashed; a fresh stream per attempt (_call may retry).
            with open_src() as src:
                result = self._client.put_object(
                    self.bucket, key, src, digest.size, content_type=content_type, metadata=dict(meta),
                    tags=_to_tags(clean_tags) if clean_tags else None, part_size=self.part_size,
                )  # fmt: skip
                return result.etag

        return self._verify(key, self._call(upload, key=key), digest, content_type, meta, clean_tags)

    def _verify(self, key: str, etag: str | None, digest: Digest, content_type: str, meta: dict[str, str],
                tags: dict[str, str]) -> ObjectInfo:  # fmt: skip
        etag = (etag or "").strip('"')
        if digest.size <= self.part_size:  # minio sent one PUT
            if etag != digest.md5:
                raise StoreError(BAD_DIGEST, "server ETag is not the md5 of the bytes sent; re-put", key=key)
            user_meta = {k: v for k, v in meta.items() if k != SHA256_META}
            now = datetime.now(UTC)  # a PUT response carries no Last-Modified
            return _info(key, digest.size, etag, digest.sha256, now, content_type, user_meta, tags)
        stat = self.stat_object(key)
        if etag != digest.multipart_etag or stat.size != digest.size or stat.sha256 != digest.sha256:
            raise StoreError(BAD_DIGEST, "multipart upload does not match the file sent; re-put", key=key)
        return dataclasses.replace(stat, tags=MappingProxyType(dict(tags)))

    def _remove_batch(self, batch: list[DeleteObject]) -> list[StoreError]:
        def run() -> list[StoreError]:
            failures = self._client.remove_objects(self.bucket, batch)
            # The result is lazy: the request happens while we iterate, so iterate here, inside _call.
            return [StoreError(e.code or "DeleteError", e.message or "", key=e.name) for e in failures
                    if e.code != NO_SUCH_KEY]  # fmt: skip

        return self._call(run)

    def _download(self, key: str, tmp: Path) -> tuple[Mapping[str, str], str]:
        response = self._client.get_object(self.bucket, key)
        sha = hashlib.sha256()
        try:
            with open(tmp, "wb") as out:
                for chunk in response.stream(CHUNK):
                    sha.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            return response.headers, sha.hexdigest()
        finally:
            response.close()
            response.release_conn()

    def _call(self, fn: Callable[[], T], *, key: str | None = None) -> T:
        """Run one idempotent client call with errors translated; if the bucket vanished (a server that
        lost its state, an operator's mistake) and we may create it, do so and try once more."""
        self.ensure_bucket()
        try:
            with self._translate(key):
                return fn()
        except StoreError as exc:
            if exc.code != NO_SUCH_BUCKET or not self.create_bucket:
                raise
        self.ensure_bucket()
        with self._translate(key):
            return fn()

    @contextmanager
    def _translate(self, key: str | None) -> Iterator[None]:
        """minio and urllib3 errors -> StoreError. Only S3's code and message are kept: never the request,
        whose headers carry the signature."""
        try:
            yield
        except S3Error as exc:
            if exc.code == NO_SUCH_BUCKET:
                self._bucket_ready = False
            message = exc.message or exc.code or "S3 error"
            raise StoreError(exc.code or "S3Error", message, key=key) from None
        except ServerError as exc:
            raise StoreError(INTERNAL_ERROR, f"server answered HTTP {exc.status_code}", key=key) from None
        except InvalidResponseError as exc:
            raise StoreError(INVALID_RESPONSE, str(exc)[:200], key=key) from None
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            why = f"S3 endpoint {self.endpoint} unreachable: {type(reason).__name__}"
            raise StoreError(CONNECTION_ERROR, why, key=key) from None


def _http_client(connect_timeout: float, read_timeout: float) -> urllib3.PoolManager:
    # minio's default waits 5 minutes and retries 5 times; the outbox has its own backoff, so fail fast here
    # and let it decide. No retries on connection or read errors: an immediate retry of a refused or hung
    # connection does not help, and urllib3 logs a "Retrying ..." warning for each one -- two per attempt
    # during an outage, which the worker reports in one line instead. Stale pooled connections are checked
    # before reuse by urllib3 itself. 5xx answers are retried briefly (logged at debug only); the final one
    # is returned (not raised) so minio can parse S3's code (e.g. SlowDown).
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(
            total=2, connect=0, read=0, other=0, status=2, backoff_factor=0.2,
            status_forcelist=(500, 502, 503, 504), raise_on_status=False,
        ),
    )


def _to_tags(tags: Mapping[str, str]) -> Tags:
    out = Tags(for_object=True)
    for name, value in tags.items():
        out[name] = value
    return out


def _info_from_headers(key: str, headers: Mapping[str, str]) -> ObjectInfo:
    """ObjectInfo from a HEAD/GET response; user metadata names come back lower-cased, our checksum apart."""
    meta = {k.lower()[len(_META_PREFIX) :]: v for k, v in headers.items() if k.lower().startswith(_META_PREFIX)}
    sha256 = meta.pop(SHA256_META, None)
    modified = headers.get("last-modified")
    when = from_http_header(modified) if modified else datetime.now(UTC)
    size, content_type = int(headers.get("content-length") or 0), headers.get("content-type") or DEFAULT_CONTENT_TYPE
    return _info(key, size, headers.get("etag"), sha256, when, content_type, meta, None)


def _info(key: str, size: int, etag: str | None, sha256: str | None, modified: datetime, content_type: str,
          metadata: Mapping[str, str], tags: Mapping[str, str] | None) -> ObjectInfo:  # fmt: skip
    # Read-only views, as LocalStore returns them: an ObjectInfo is a frozen value.
    frozen_tags = None if tags is None else MappingProxyType(dict(tags))
    return ObjectInfo(key, size, (etag or "").strip('"'), sha256, modified, content_type,
                      MappingProxyType(dict(metadata)), frozen_tags)  # fmt: skip


def _check_sha256(key: str, headers: Mapping[str, str], actual: str) -> None:
    expected = headers.get(_META_PREFIX + SHA256_META)
    if expected is not None and expected != actual:
        raise StoreError(BAD_DIGEST, "downloaded bytes do not match the stored sha256", key=key)
