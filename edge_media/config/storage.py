"""``[storage]`` and ``[storage.s3]``: where finished clips go."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ._base import ConfigModel, FieldCheckError

_ENV_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
# S3 bucket naming rules (the subset that matters: length, charset, alnum at both ends).
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_HOST_PORT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback IPs (where plain HTTP is acceptable)."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class S3Config(ConfigModel):
    endpoint: str = Field(default="", description="S3 endpoint as host:port, without scheme.")
    region: str = Field(default="us-east-1", min_length=1, description="S3 region.")
    bucket: str = Field(default="", description="Bucket for clips.")
    secure: bool | None = Field(
        default=None, description="Use TLS; unset: TLS unless the endpoint is loopback."
    )
    access_key_env: str = Field(
        default="EDGE_MEDIA_S3_ACCESS_KEY", pattern=_ENV_RE, description="Env var holding the access key."
    )
    secret_key_env: str = Field(
        default="EDGE_MEDIA_S3_SECRET_KEY", pattern=_ENV_RE, description="Env var holding the secret key."
    )
    credentials_file: Path | None = Field(
        default=None,
        strict=False,
        description="Optional file with credentials; keeps secrets out of this file and the environment.",
    )
    create_bucket: bool = Field(default=True, description="Create the bucket at start if missing.")
    part_size_mb: int = Field(default=16, ge=5, le=512, description="Multipart upload part size (MiB).")

    @field_validator("endpoint")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if not value:
            return value
        if "://" in value:
            raise ValueError(f"give host:port without a scheme (use secure= for TLS), got {value!r}")
        match = _HOST_PORT_RE.match(value)
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise ValueError(f"must be host:port with a port in 1..65535, got {value!r}")
        return value

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if value and (_BUCKET_RE.match(value) is None or ".." in value):
            raise ValueError(
                f"not a valid S3 bucket name (3-63 chars of a-z 0-9 . -, alphanumeric at both ends): {value!r}"
            )
        return value

    @property
    def host(self) -> str:
        return self.endpoint.rsplit(":", 1)[0]

    @property
    def use_tls(self) -> bool:
        """Resolved TLS choice: explicit ``secure`` wins, else TLS for anything but loopback."""
        if self.secure is not None:
            return self.secure
        return not is_loopback(self.host)


class StorageConfig(ConfigModel):
    backend: Literal["local", "s3"] = Field(default="local", description="Object store: local directory or S3.")
    local_dir: str = Field(
        default="", description="Local store root. Empty: <data_dir>/store; relative: below data_dir."
    )
    plan: str = Field(default="basic", min_length=1, description="The owner's service plan; a key of [plans].")
    s3: S3Config | None = Field(default=None, description="S3 settings; required when backend = 's3'.")
    keep_local_days: float = Field(
        default=0.0, ge=0, le=3650,
        description="Keep a local copy of uploaded clips this long (0: delete once uploaded).",
    )
    sweep_interval_s: float = Field(
        default=60.0, ge=1, le=86400, description="How often expired clips are deleted (seconds)."
    )
    reconcile_every: int = Field(
        default=60, ge=0, le=100000,
        description="Every N sweeps also list the bucket by tag for expired objects the index lost (0: never).",
    )
    lifecycle_grace_days: int = Field(
        default=1, ge=0, le=30, description="S3 lifecycle backstop expires objects this many days after the plan."
    )

    @model_validator(mode="after")
    def _s3_complete(self) -> StorageConfig:
        # Only checked for the s3 backend, so a hub can keep a parked [storage.s3] while running locally.
        if self.backend != "s3":
            return self
        if self.s3 is None:
            raise FieldCheckError(("s3",), "backend = 's3' needs a [storage.s3] table with endpoint and bucket")
        for name in ("endpoint", "bucket"):
            if not getattr(self.s3, name):
                raise FieldCheckError(("s3", name), "required when backend = 's3'")
        return self
