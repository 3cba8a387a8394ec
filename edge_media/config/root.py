"""The whole configuration file, and the checks that span sections."""

from __future__ import annotations

from difflib import get_close_matches
from pathlib import Path
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from ._base import ConfigModel, FieldCheckError
from .api import ApiConfig
from .audio import AudioConfig, MicrophoneConfig
from .camera import CameraConfig
from .events import EventsConfig
from .feedback import FeedbackConfig
from .models import ModelsConfig
from .notify import NotifyConfig
from .recording import RecordingConfig
from .service import ServiceConfig
from .storage import StorageConfig

# Plan names travel as S3 tag values and lifecycle filters, so keep them to a safe slug.
PlanName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]
RetentionDays = Annotated[int, Field(ge=1, le=3650)]


def _default_plans() -> dict[str, int]:
    return {"basic": 7}


class OwnerConfig(ConfigModel):
    plan: str = Field(default="", description="This owner's service plan (a key of [plans]); empty: storage.plan.")


class Config(ConfigModel):
    service: ServiceConfig = Field(default_factory=ServiceConfig, description="Process-wide settings.")
    recording: RecordingConfig = Field(default_factory=RecordingConfig, description="Pre-roll, clips, spool.")
    events: EventsConfig = Field(default_factory=EventsConfig, description="Motion to event rules.")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Where clips are stored.")
    plans: dict[PlanName, RetentionDays] = Field(
        default_factory=_default_plans, description="Service plan name -> retention in days."
    )
    owners: dict[PlanName, OwnerConfig] = Field(
        default_factory=dict, description="Owner id -> settings; owners not listed use storage.plan."
    )
    audio: AudioConfig = Field(default_factory=AudioConfig, description="Audio-event detection.")
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig, description="Anonymised audio to the partner.")
    notify: NotifyConfig = Field(default_factory=NotifyConfig, description="MQTT / Home Assistant and webhooks.")
    models: ModelsConfig = Field(default_factory=ModelsConfig, description="Signed audio-model releases.")
    api: ApiConfig = Field(default_factory=ApiConfig, description="The hub's REST API and review page.")
    microphones: list[MicrophoneConfig] = Field(
        default_factory=list, description="Local microphones (sounddevice); may be empty."
    )
    cameras: list[CameraConfig] = Field(
        default_factory=list, description="Cameras; may be empty (a hub can start with none)."
    )

    @model_validator(mode="after")
    def _unique_camera_names(self) -> Config:
        # Names key object paths and metrics: two cameras with one name would overwrite each other's clips.
        seen: dict[str, int] = {}
        for index, camera in enumerate(self.cameras):
            if camera.name in seen:
                raise FieldCheckError(
                    ("cameras", index, "name"),
                    f"duplicate camera name {camera.name!r} (also cameras[{seen[camera.name]}])",
                )
            seen[camera.name] = index
        return self

    @model_validator(mode="after")
    def _plan_known(self) -> Config:
        if self.storage.plan not in self.plans:
            known = ", ".join(sorted(self.plans)) or "none"
            raise FieldCheckError(
                ("storage", "plan"), f"unknown plan {self.storage.plan!r} (plans defined: {known})"
            )
        return self

    @model_validator(mode="after")
    def _microphones_valid(self) -> Config:
        cameras = {c.name for c in self.cameras}
        seen: set[str] = set()
        for index, mic in enumerate(self.microphones):
            if mic.name in seen or mic.name in cameras:
                raise FieldCheckError(("microphones", index, "name"), f"duplicate source name {mic.name!r}")
            seen.add(mic.name)
            if mic.camera and mic.camera not in cameras:
                raise FieldCheckError(("microphones", index, "camera"), f"no camera named {mic.camera!r}")
        return self

    @model_validator(mode="after")
    def _owner_plans_known(self) -> Config:
        for owner, settings in self.owners.items():
            if settings.plan and settings.plan not in self.plans:
                known = ", ".join(sorted(self.plans))
                raise FieldCheckError(("owners", owner, "plan"), f"unknown plan {settings.plan!r} (plans: {known})")
        return self

    @model_validator(mode="after")
    def _notify_sources_known(self) -> Config:
        # A typo'd camera name in a rule would silently notify (or silence) nothing: name it.
        sources = [c.name for c in self.cameras] + [m.name for m in self.microphones]
        for name in self.notify.cameras:
            if name not in sources:
                close = get_close_matches(name, sources, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise FieldCheckError(("notify", "cameras", name), f"no camera or microphone named {name!r} "
                                      f"({hint}sources: {', '.join(sources) or 'none'})")
        return self

    def plan_for(self, owner: str) -> str:
        """The service plan that governs ``owner``'s recordings."""
        settings = self.owners.get(owner)
        return settings.plan if settings is not None and settings.plan else self.storage.plan

    @property
    def spool_path(self) -> Path:
        """The spool directory, resolved against ``service.data_dir``."""
        return _below(self.service.data_dir, self.recording.spool_dir, "spool")

    @property
    def store_path(self) -> Path:
        """The local object-store root, resolved against ``service.data_dir``."""
        return _below(self.service.data_dir, self.storage.local_dir, "store")

    @property
    def partner_path(self) -> Path:
        """The local partner store's root (``[feedback.partner] backend = "local"``)."""
        return _below(self.service.data_dir, self.feedback.partner.local_dir, "partner")

    @property
    def models_path(self) -> Path:
        """Installed model releases (``[models] dir``), resolved against ``service.data_dir``."""
        return _below(self.service.data_dir, self.models.dir, "models")

    @property
    def retention_days(self) -> int:
        """Retention of the owner's current plan."""
        return self.plans[self.storage.plan]

    def camera(self, name: str) -> CameraConfig:
        """The camera called ``name``; KeyError if there is none."""
        for camera in self.cameras:
            if camera.name == name:
                return camera
        raise KeyError(name)


def _below(data_dir: Path, configured: str, default: str) -> Path:
    # Path("/a") / "/b" is "/b", so an absolute setting wins and a relative one lands below data_dir.
    return data_dir / (configured or default)
