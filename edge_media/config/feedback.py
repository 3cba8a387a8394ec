"""``[feedback]`` and ``[feedback.partner]``: where anonymised audio for the model partner goes, and how much.

The partner store is separate from the clip store (its own bucket and credentials); its S3 settings are
exactly ``[storage.s3]``'s (same model, same credential resolution), so an operator learns one table.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ._base import ConfigModel, FieldCheckError
from .storage import S3Config


class PartnerConfig(ConfigModel):
    backend: Literal["local", "s3"] = Field(default="local", description="Partner store: local directory or S3.")
    local_dir: str = Field(default="", description="Local partner store. Empty: <data_dir>/partner.")
    s3: S3Config | None = Field(default=None, description="S3 settings of the partner's feedback bucket.")

    @model_validator(mode="after")
    def _s3_complete(self) -> PartnerConfig:
        if self.backend != "s3":
            return self
        if self.s3 is None:
            raise FieldCheckError(("s3",), "backend = 's3' needs a [feedback.partner.s3] table")
        for name in ("endpoint", "bucket"):
            if not getattr(self.s3, name):
                raise FieldCheckError(("s3", name), "required when backend = 's3'")
        return self


class FeedbackConfig(ConfigModel):
    enabled: bool = Field(default=True, description="Send consented, anonymised audio to the model partner.")
    daily_byte_cap: int = Field(default=50_000_000, ge=0, le=10_000_000_000,
                                description="Product improvement: most FLAC bytes queued per UTC day.")
    send_interval_s: float = Field(default=30.0, ge=0.5, le=86400,
                                   description="How often the service retries sending (it is also woken on queue).")
    partner: PartnerConfig = Field(default_factory=PartnerConfig, description="The partner's feedback store.")
