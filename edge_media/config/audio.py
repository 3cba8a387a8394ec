"""``[audio]`` and ``[[microphones]]``: audio events from camera tracks and local microphones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from ._base import ConfigModel

Seconds = Annotated[float, Field(ge=0, le=30)]
DEFAULT_MIN_DURATION_S = 0.5  # for labels the model's manifest gives no minimum duration


class AudioConfig(ConfigModel):
    enabled: bool = Field(default=True, description="Detect audio events (camera audio tracks and microphones).")
    model: Path | None = Field(
        default=None, strict=False,
        description="A YAMNet-style ONNX (waveform -> 521 AudioSet scores) to use instead of the shipped model.",
    )
    class_map: Path | None = Field(
        default=None, strict=False, description="The class-map CSV (index,mid,display_name) for `model`."
    )
    hop_s: float = Field(default=0.4875, ge=0.1, le=2.0, description="Seconds between window starts.")
    silence_dbfs: float = Field(
        default=-60.0, ge=-120, le=0, description="Windows quieter than this skip inference entirely."
    )
    min_duration_s: Seconds | dict[str, Seconds] | None = Field(
        default=None,
        description="Seconds a label must be heard to start an event: one number for every label, or "
                    "per label (others keep the model's value); empty: the model's per-label values "
                    f"(or {DEFAULT_MIN_DURATION_S} s).",
    )
    hysteresis: float = Field(default=0.1, ge=0, le=0.5, description="An event stays on down to threshold - this.")
    end_after_s: float = Field(default=3.0, ge=0.5, le=120, description="An event ends after this long not heard.")
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Per-label score thresholds overriding the model's (0..1)."
    )
    verify: list[str] = Field(
        default_factory=lambda: ["smoke_co_alarm"],
        description="Labels that start an event only once their pattern is heard in the last seconds of audio: "
                    "smoke_co_alarm (ISO 8201 T3/T4 tone), siren (periodic pitch sweep or hi-lo; off by default, "
                    "it measured worse than the model alone, see the model card). Empty: the model's score alone.",
    )
    candidate_thresholds: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict,
        description="Per verified label: the score at which a window is checked by the verifier (0..1).",
    )


class MicrophoneConfig(ConfigModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$",
                      description="Unique lower-case slug of this microphone.")
    device: str = Field(default="", description="sounddevice input device name or index; empty: the default input.")
    block_ms: int = Field(default=100, ge=10, le=1000, description="Capture block length in milliseconds.")
    camera: str = Field(
        default="", description="Paired camera: an audio event records its clip. Empty: audio-only clips."
    )
    owner: str = Field(default="owner", min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$",
                       description="Owner of this microphone's recordings (unpaired microphones).")
    enabled: bool = Field(default=True, description="A disabled microphone is not opened.")
