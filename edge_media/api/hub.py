"""What the API needs of the running hub (``edge_media.service.hub.Service`` provides it)."""

from __future__ import annotations

from typing import Protocol

from uploader.outbox import Outbox

from ..config import Config
from ..privacy import OwnerRights
from ..rollout.manager import ModelReleases
from ..service.bus import HubBus
from ..service.context import HubContext
from ..service.live import LiveStatus
from ..service.metrics import HubMetrics


class ApiHub(Protocol):
    config: Config
    ctx: HubContext
    live: LiveStatus
    rights: OwnerRights
    outbox: Outbox
    metrics: HubMetrics
    bus: HubBus
    releases: ModelReleases | None

    def model_versions(self) -> dict[str, str]: ...
