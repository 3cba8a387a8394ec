"""``[recording]``: pre-roll, clip length and the spool that holds clips until upload."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ._base import ConfigModel, FieldCheckError

MIB = 1024 * 1024


class RecordingConfig(ConfigModel):
    pre_roll_s: float = Field(
        default=5.0, ge=0, le=60, description="Seconds of video kept from before the trigger."
    )
    post_roll_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="An event ends after this long without motion; also the clip's tail.",
    )
    max_clip_s: float = Field(
        default=300.0,
        ge=5,
        le=3600,
        description="Longest clip; a longer event is split. Must exceed pre_roll_s + post_roll_s.",
    )
    spool_dir: str = Field(
        default="", description="Where clips wait for upload. Empty: <data_dir>/spool; relative: below data_dir."
    )
    spool_quota_bytes: int = Field(
        default=2 * 1024 * MIB, ge=16 * MIB, description="Byte quota of the spool before eviction."
    )
    spool_full_policy: Literal["drop-oldest", "stop-recording"] = Field(
        default="drop-oldest",
        description="When the spool is over quota: evict the oldest unsent clips, or record nothing new.",
    )
    ring_max_bytes: int = Field(
        default=64 * MIB, ge=1 * MIB, description="Per-camera bound on the pre-roll packet ring, in bytes."
    )

    @model_validator(mode="after")
    def _clip_longer_than_rolls(self) -> RecordingConfig:
        # A clip shorter than its own pre- and post-roll could never contain the event itself.
        rolls = self.pre_roll_s + self.post_roll_s
        if self.max_clip_s <= rolls:
            raise FieldCheckError(
                ("max_clip_s",),
                f"must be greater than pre_roll_s + post_roll_s = {rolls:g} (got {self.max_clip_s:g})",
            )
        return self
