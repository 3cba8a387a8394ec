"""``[events]``: how motion frames become events."""

from __future__ import annotations

from pydantic import Field

from ._base import ConfigModel


class EventsConfig(ConfigModel):
    min_motion_frames: int = Field(
        default=2,
        ge=1,
        le=50,
        description="Motion must persist this many consecutive detect frames to start an event "
        "(filters single-frame noise such as a compression glitch).",
    )
    merge_gap_s: float = Field(
        default=0.0,
        ge=0,
        le=120,
        description="A new event starting within this gap after one ended is merged into it.",
    )
    cooldown_s: float = Field(
        default=0.0, ge=0, le=3600, description="No new event for this long after one ended."
    )
