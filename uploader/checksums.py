"""Checksums of an upload, computed in one pass: what S3 must report back for it (ETag) and the
sha256 we store beside it."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from typing import BinaryIO

CHUNK = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Digest:
    size: int
    md5: str
    sha256: str
    multipart_etag: str  # what S3 reports for a multipart upload with our part size



def file_digest(src: BinaryIO, part_size: int) -> Digest:
    """md5, sha256 and the multipart ETag (md5 of the parts' md5s, "-N") in one pass. The per-part md5s
    are only computed when the file is large enough to go multipart (a third hash pass otherwise)."""
    total = src.seek(0, io.SEEK_END)
    src.seek(0)
    md5, sha = hashlib.md5(), hashlib.sha256()
    multipart = total > part_size
    part, in_part, part_md5s, size = hashlib.md5(), 0, [], 0
    while chunk := src.read(CHUNK):
        md5.update(chunk)
        sha.update(chunk)
        size += len(chunk)
        view = memoryview(chunk) if multipart else memoryview(b"")
        while view:
            take = min(len(view), part_size - in_part)
            part.update(view[:take])
            in_part, view = in_part + take, view[take:]
            if in_part == part_size:
                part_md5s.append(part.digest())
                part, in_part = hashlib.md5(), 0
    if in_part:
        part_md5s.append(part.digest())
    whole = md5.hexdigest()
    etag = f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}" if multipart else whole
    return Digest(size=size, md5=whole, sha256=sha.hexdigest(), multipart_etag=etag)
