"""``[[cameras]]``: one entry per camera."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ._base import ConfigModel, FieldCheckError

SourceKind = Literal["file", "rtsp", "http", "v4l2"]

_SCHEMES: dict[str, SourceKind] = {"rtsp": "rtsp", "rtsps": "rtsp", "http": "http", "https": "http"}
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_V4L2_RE = re.compile(r"^/dev/video[0-9]+$")

Coord = Annotated[float, Field(ge=0.0, le=1.0)]
# Points are [x, y] lists (not tuples) because TOML arrays arrive as lists and the models are strict.
Point = Annotated[list[Coord], Field(min_length=2, max_length=2)]
Polygon = Annotated[list[Point], Field(min_length=3)]


def source_kind(url: str) -> SourceKind:
    """Classify a source URL; raises ValueError for anything we cannot open."""
    if not url.strip():
        raise ValueError("must not be empty")
    if _V4L2_RE.match(url):
        return "v4l2"
    if url.startswith("/dev/"):
        raise ValueError(f"device sources must look like /dev/videoN (got {url!r})")
    match = _SCHEME_RE.match(url)
    if match is None:
        return "file"
    kind = _SCHEMES.get(match.group(1).lower())
    if kind is None:
        raise ValueError(
            f"unsupported scheme {match.group(1)!r}: use a file path, rtsp://, rtsps://, http(s):// or /dev/videoN"
        )
    if len(url) == match.end():
        raise ValueError(f"{url!r} has no host")
    return kind


class CameraConfig(ConfigModel):
    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9_-]+$",
        description="Unique lower-case slug; appears in object keys, metrics and topics.",
    )
    owner: str = Field(
        default="owner", min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$",
        description="Account that owns this camera's recordings (plan, export, erasure); a key of [owners].",
    )
    record_url: str = Field(
        description="Main stream: file path, rtsp://, rtsps://, http(s):// or /dev/videoN. Demuxed only."
    )
    detect_url: str = Field(
        default="", description="Optional low-res substream for detection; empty: decode the record stream."
    )
    detect_width: int = Field(
        default=320, ge=64, le=1280, description="Width the detect frames are scaled to (even)."
    )
    detect_fps: float = Field(default=5.0, ge=0.5, le=30, description="Detect frames per second.")
    sensitivity: float = Field(default=0.5, ge=0, le=1, description="Motion sensitivity; 1 is most sensitive.")
    motion_masks: list[Polygon] = Field(
        default_factory=list,
        description="Polygons to IGNORE, as [x, y] points normalised to 0..1, at least 3 points each.",
    )
    audio_events: bool = Field(
        default=True, description="Detect audio events on this camera's audio track (when it has one)."
    )
    enabled: bool = Field(default=True, description="A disabled camera is neither opened nor recorded.")
    realtime: bool = Field(default=False, description="Pace file sources at real time (files only).")
    loop: bool = Field(default=False, description="Replay file sources forever (files only, for testing).")

    @field_validator("record_url")
    @classmethod
    def _valid_record_url(cls, value: str) -> str:
        source_kind(value)
        return value

    @field_validator("detect_url")
    @classmethod
    def _valid_detect_url(cls, value: str) -> str:
        if value:
            source_kind(value)
        return value

    @field_validator("detect_width")
    @classmethod
    def _even_width(cls, value: int) -> int:
        # Chroma-subsampled (4:2:0) scalers require even dimensions.
        if value % 2:
            raise ValueError(f"must be even (got {value})")
        return value

    @model_validator(mode="after")
    def _file_only_options(self) -> CameraConfig:
        # A silently ignored option is a debugging trap: say so instead.
        if self.source_kind != "file":
            for option in ("realtime", "loop"):
                if getattr(self, option):
                    raise FieldCheckError((option,), f"only applies to file sources, not {self.source_kind}")
        return self

    @property
    def source_kind(self) -> SourceKind:
        """Kind of the record source (file/rtsp/http/v4l2)."""
        return source_kind(self.record_url)

    @property
    def has_substream(self) -> bool:
        """True when detection decodes its own stream instead of the record stream."""
        return bool(self.detect_url)
