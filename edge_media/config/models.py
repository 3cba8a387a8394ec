"""``[models]``: where new audio-model releases come from, which keys may sign them, and how a hub adopts one
(shadow run, promotion, watch with automatic rollback)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ._base import ConfigModel, FieldCheckError
from .storage import S3Config


class ReleaseSourceConfig(ConfigModel):
    backend: Literal["none", "local", "s3"] = Field(
        default="none", description="Where releases are published: 'none' (no updates), a directory, or S3.")
    local_dir: str = Field(default="", description="Releases directory (backend 'local'), e.g. a mounted share.")
    prefix: str = Field(default="releases", max_length=200, pattern=r"^[A-Za-z0-9._/-]*$",
                        description="Key prefix of the releases in the bucket or directory.")
    s3: S3Config | None = Field(default=None, description="The models bucket (backend 's3'), as [storage.s3].")

    @model_validator(mode="after")
    def _complete(self) -> ReleaseSourceConfig:
        if self.backend == "local" and not self.local_dir:
            raise FieldCheckError(("local_dir",), "required when backend = 'local'")
        if self.backend == "s3":
            if self.s3 is None:
                raise FieldCheckError(("s3",), "backend = 's3' needs a [models.source.s3] table")
            for name in ("endpoint", "bucket"):
                if not getattr(self.s3, name):
                    raise FieldCheckError(("s3", name), "required when backend = 's3'")
        return self


class ModelsConfig(ConfigModel):
    public_keys: list[str] = Field(
        default_factory=list,
        description="Ed25519 public keys (base64, 32 bytes) trusted to sign releases; none: nothing is installed.")
    source: ReleaseSourceConfig = Field(default_factory=ReleaseSourceConfig, description="Release source.")
    dir: str = Field(default="", description="Installed models. Empty: <data_dir>/models; relative: below data_dir.")
    check_interval_s: float = Field(default=21600.0, ge=0, le=30 * 86400,
                                    description="How often the service looks for a new release (0: only by hand).")
    auto_install: bool = Field(default=True, description="Install and shadow-test a new release found by a check.")
    shadow_s: float = Field(default=86400.0, ge=0, le=30 * 86400,
                            description="A candidate runs beside the active model this long before promotion.")
    shadow_min_windows: int = Field(default=500, ge=0, le=10_000_000,
                                    description="... and until it has scored at least this many loud windows.")
    max_event_ratio: float = Field(default=1.25, ge=1.0, le=10.0,
                                   description="Promotion: candidate events at most this times the active model's")
    event_slack: int = Field(default=2, ge=0, le=1000, description="... plus this many.")
    watch_s: float = Field(default=259200.0, ge=0, le=90 * 86400,
                           description="After promotion: how long flags can still roll the model back.")
    rollback_min_flags: int = Field(default=3, ge=1, le=1000,
                                    description="Flagged misdetections needed before the flag rate can roll back.")
    rollback_flag_rate_factor: float = Field(default=2.0, ge=1.0, le=100.0,
                                             description="Roll back when the flag rate exceeds the previous model's "
                                                         "times this ...")
    rollback_flag_rate_margin: float = Field(default=0.05, ge=0.0, le=1.0,
                                             description="... and exceeds it by this much (flags per event).")
    keep_versions: int = Field(default=3, ge=2, le=50, description="Installed versions kept on disk (rollback).")

    @field_validator("public_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        from ..rollout.release import load_public_key

        for index, text in enumerate(value):
            try:
                load_public_key(text)
            except ValueError as exc:
                raise ValueError(f"public_keys[{index}]: not an Ed25519 public key ({exc})") from None
        return value
