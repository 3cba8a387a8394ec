"""``[service]``: process-wide settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ._base import ConfigModel

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["text", "json"]


class ServiceConfig(ConfigModel):
    data_dir: Path = Field(
        default=Path("/var/lib/edge-media"),
        strict=False,  # TOML gives a string; converting it to a Path is the point
        description="Directory under which everything durable lives by default (spool, store, state).",
    )
    log_level: LogLevel = Field(default="INFO", description="Minimum level of log messages.")
    log_format: LogFormat = Field(
        default="text", description='"text" lines, or "json": one object per line (time, level, logger, message).'
    )
    detect_threads: int = Field(
        default=1, ge=1, le=16, description="onnxruntime intra-op threads for the shared detector."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        # "info" is an obvious intent; rejecting it would only annoy.
        return value.upper() if isinstance(value, str) else value

    @field_validator("data_dir")
    @classmethod
    def _non_empty_dir(cls, value: Path) -> Path:
        if str(value) in ("", "."):
            raise ValueError("must be a directory path, not empty")
        return value
