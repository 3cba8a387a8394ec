"""``[notify]``: "something is not OK" notifications over MQTT (Home Assistant discovery) and webhooks.

Rules decide which *notifications* go out (the ``<prefix>/events`` JSON and webhooks): per camera, per label and
quiet hours. They never touch MQTT *state* topics (motion / audio / connected ON/OFF, storage problems): those
always say what is true now, so Home Assistant and anything else reading them never sees a stale "no motion".
Connectivity and storage problems are always notified, and labels in ``always_notify`` (a smoke alarm, breaking
glass) go out even in quiet hours: a product that silences a smoke alarm at night is dangerous.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from ._base import ConfigModel, FieldCheckError

_TOPIC_RE = r"^[A-Za-z0-9_/-]+$"  # no MQTT wildcards (+ #), no leading/trailing slash checked below
_QUIET_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])$")
SAFETY_LABELS = ("smoke_co_alarm", "glass_break", "scream", "baby_cry")
LabelName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]


def _topic(value: str) -> str:
    if value.startswith("/") or value.endswith("/") or "//" in value:
        raise ValueError(f"must not start or end with '/' or contain '//' (got {value!r})")
    return value


class MqttConfig(ConfigModel):
    enabled: bool = Field(default=False, description="Publish availability, states and events to an MQTT broker.")
    host: str = Field(default="localhost", min_length=1, description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (1883; 8883 is usual with TLS).")
    username: str = Field(default="", description="Broker user; empty: connect anonymously.")
    password: SecretStr = Field(default=SecretStr(""), description="Broker password (never logged).")
    client_id: str = Field(default="", max_length=64,
                           description="MQTT client id; empty: edge-media-<hub id> (stable across restarts).")
    topic_prefix: str = Field(default="edge-media", min_length=1, max_length=64, pattern=_TOPIC_RE,
                              description="Every topic starts with this: <prefix>/available, <prefix>/<camera>/...")
    tls: bool = Field(default=False, description="Connect with TLS.")
    ca_file: Path | None = Field(default=None, strict=False,
                                 description="CA bundle to verify the broker with TLS; empty: the system's CAs.")
    discovery: bool = Field(default=True, description="Announce entities by Home Assistant MQTT discovery.")
    discovery_prefix: str = Field(default="homeassistant", min_length=1, max_length=64, pattern=_TOPIC_RE,
                                  description="Home Assistant's discovery prefix.")
    ha_status_topic: str = Field(default="homeassistant/status", min_length=1, max_length=128, pattern=_TOPIC_RE,
                                 description="Home Assistant's birth topic: discovery is re-announced on 'online'.")
    qos: int = Field(default=1, ge=0, le=2, description="QoS of every message (1: at least once).")
    queue_size: int = Field(default=1000, ge=10, le=100_000,
                            description="Notices waiting for the broker; beyond it the oldest are dropped.")

    @field_validator("topic_prefix", "discovery_prefix", "ha_status_topic")
    @classmethod
    def _topic_shape(cls, value: str) -> str:
        return _topic(value)

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        if self.password.get_secret_value() and not self.username:
            raise FieldCheckError(("username",), "a password is set but no username: set both, or neither")
        if self.ca_file is not None and not self.tls:
            raise FieldCheckError(("ca_file",), "only used with tls = true (set tls = true, or remove ca_file)")
        return self


class WebhookConfig(ConfigModel):
    url: str = Field(min_length=1, description="Receiver URL (http:// or https://).")
    secret: SecretStr = Field(description="Standard Webhooks signing secret: whsec_ + base64 (never logged).")
    timeout_s: float = Field(default=5.0, ge=0.1, le=60, description="Per-attempt timeout in seconds.")
    max_attempts: int = Field(default=8, ge=1, le=50, description="Attempts before a message is given up.")
    backoff_s: float = Field(default=1.0, ge=0.01, le=600,
                             description="First retry delay; doubles per attempt (with jitter), capped at 10 min.")
    queue_size: int = Field(default=1000, ge=10, le=100_000,
                            description="Messages waiting for this receiver; beyond it the oldest are dropped.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL with a host (got {value!r})")
        return value

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: SecretStr) -> SecretStr:
        # The message never repeats the value: it is a secret even when malformed.
        raw = value.get_secret_value()
        if not raw.startswith("whsec_"):
            raise ValueError("must start with 'whsec_' followed by the base64 key")
        try:
            key = base64.b64decode(raw.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the part after 'whsec_' is not valid base64") from None
        if not 24 <= len(key) <= 64:
            raise ValueError(f"the key must be 24 to 64 bytes (got {len(key)})")
        return value

    @property
    def key(self) -> bytes:
        return base64.b64decode(self.secret.get_secret_value().removeprefix("whsec_"))


class SourceRule(ConfigModel):
    enabled: bool = Field(default=True, description="Notify about this camera's (or microphone's) events at all.")
    labels: list[LabelName] = Field(default_factory=list,
                                    description="Only these labels ('motion', audio labels); empty: every label.")


class NotifyConfig(ConfigModel):
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT broker and Home Assistant discovery.")
    webhooks: list[WebhookConfig] = Field(default_factory=list, description="Standard Webhooks receivers.")
    storage_down_after_s: float = Field(default=300.0, ge=0, le=86400,
                                        description="The store must be unreachable this long before it is notified.")
    labels: dict[LabelName, bool] = Field(default_factory=dict,
                                          description="Per label on/off for every source ('motion' = false ...).")
    cameras: dict[str, SourceRule] = Field(default_factory=dict,
                                           description="Per camera or microphone rules (name -> rule).")
    quiet_hours: list[str] = Field(default_factory=list,
                                   description="Local-time ranges 'HH:MM-HH:MM' when only always_notify labels go out.")
    always_notify: list[LabelName] = Field(default_factory=lambda: list(SAFETY_LABELS),
                                           description="Labels notified even in quiet hours (safety sounds).")

    @field_validator("quiet_hours")
    @classmethod
    def _ranges(cls, value: list[str]) -> list[str]:
        for index, text in enumerate(value):
            m = _QUIET_RE.match(text)
            if m is None:
                raise FieldCheckError((index,), f"must be 'HH:MM-HH:MM' in 24 h local time, got {text!r}")
            if m.group(1, 2) == m.group(3, 4):
                raise FieldCheckError((index,), f"{text!r} is empty (start equals end)")
        return value

    @model_validator(mode="after")
    def _labels_known(self) -> NotifyConfig:
        from ..audio.labels import PRODUCT_LABELS  # the label vocabulary lives with the audio package

        known = ("motion", *PRODUCT_LABELS)
        where: list[tuple[tuple[str | int, ...], str]] = [(("labels", k), k) for k in self.labels]
        where += [(("always_notify", i), k) for i, k in enumerate(self.always_notify)]
        where += [(("cameras", cam, "labels", i), k) for cam, rule in self.cameras.items()
                  for i, k in enumerate(rule.labels)]
        for loc, label in where:
            if label not in known:
                raise FieldCheckError(loc, f"unknown label {label!r} (labels: {', '.join(known)})")
        return self

    @property
    def active(self) -> bool:
        """Anything to send to at all."""
        return self.mqtt.enabled or bool(self.webhooks)
