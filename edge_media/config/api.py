"""``[api]``: the hub's REST API (and review page), served by ``edge-media run`` in the same process."""

from __future__ import annotations

from pydantic import Field, field_validator

from ._base import ConfigModel


class ApiConfig(ConfigModel):
    enabled: bool = Field(default=True, description="Serve the REST API and review page from `edge-media run`.")
    host: str = Field(default="127.0.0.1", min_length=1, max_length=255,
                      description="Address the API listens on (loopback by default; 0.0.0.0: every interface).")
    port: int = Field(default=8971, ge=0, le=65535, description="TCP port (0: any free port, logged at start).")
    link_ttl_s: int = Field(default=300, ge=10, le=86400, description="Lifetime of a signed clip link, seconds.")
    auth_failures_per_minute: int = Field(
        default=10, ge=1, le=10000,
        description="Failed authentications one client address may make per minute before it gets 429.")
    public_url: str = Field(default="", max_length=2048,
                            description="Base URL clip links are built on (e.g. https://hub.local:8971); "
                                        "empty: links are relative to the API.")

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (or be empty)")
        return value.rstrip("/")
