"""The clip sidecar: the one record the recorder hands to the uploader (as a JSON file).

Written atomically (temp file, fsync, rename, fsync dir) so a reader never sees half a sidecar.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recorder.events import Event

if TYPE_CHECKING:
    from recorder.writer import WrittenClip

SCHEMA = 1


@dataclass(slots=True)
class ClipSidecar:
    clip_id: str
    camera: str
    events: list[Event]
    stream_start: float
    stream_end: float
    wall_start: str  # ISO-8601 UTC with 'Z'
    wall_end: str
    duration_s: float
    size_bytes: int
    sha256: str
    model_versions: dict[str, str]
    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    file: str  # clip file name, next to the sidecar
    recovered: bool = False
    schema: int = SCHEMA
    container: str = "mp4"  # FFmpeg muxer of ``file``: "mp4", or "matroska" for codecs MP4 cannot hold

    @classmethod
    def for_clip(cls, written: WrittenClip, *, clip_id: str, camera: str, events: list[Event],
                 model_versions: dict[str, str], recovered: bool = False) -> ClipSidecar:
        """Describe a finished clip; the file name is ``<clip_id>.<ext>`` (the spool's layout)."""
        return cls(
            clip_id=clip_id, camera=camera, events=list(events),
            stream_start=written.first_time, stream_end=written.first_time + written.duration_s,
            wall_start=iso_utc(written.first_wall), wall_end=iso_utc(written.first_wall + written.duration_s),
            duration_s=written.duration_s, size_bytes=written.size_bytes, sha256=written.sha256,
            model_versions=dict(model_versions), video_codec=written.video_codec,
            audio_codec=written.audio_codec, width=written.width, height=written.height,
            file=f"{clip_id}{written.path.suffix}", recovered=recovered, container=written.container,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClipSidecar:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unsupported sidecar schema {data.get('schema')!r}")
        fields = dict(data)
        fields["events"] = [Event.from_dict(e) for e in data.get("events", [])]
        fields["model_versions"] = dict(data.get("model_versions", {}))
        return cls(**fields)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ClipSidecar:
        return cls.from_dict(json.loads(text))

    def write_atomic(self, path: Path | str) -> None:
        write_text_atomic(Path(path), self.to_json())

    @classmethod
    def read(cls, path: Path | str) -> ClipSidecar:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def iso_utc(wall: float) -> str:
    """Epoch seconds → ``2026-11-29T16:56:00.123Z``."""
    dt = datetime.fromtimestamp(wall, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_utc(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def new_clip_id(wall: float) -> str:
    """Time-sortable unique id, e.g. ``20261129T165600Z-1a2b3c4d`` (no camera name: ids end up in URLs)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(wall))
    return f"{stamp}-{secrets.token_hex(4)}"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that ``path`` holds either the old or the whole new content after a crash."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX needs the directory itself fsynced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

