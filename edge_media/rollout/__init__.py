"""Signed audio-model releases on the hub: verify, install, smoke-test, shadow, promote, roll back.

:mod:`.release` (the signed manifest, keys, cohorts), :mod:`.source` (where releases are read), :mod:`.store`
(installed files and the rollout tables), :mod:`.smoke` (the smoke test), :mod:`.manager` (check, install,
rollback, status). The service's shadow run, hot swap and watch are in ``edge_media.service.model_rollout``.
"""

from .manager import ModelReleases, NoRelease, build_source
from .release import ReleaseError, ReleaseManifest
from .store import RolloutStore

__all__ = ["ModelReleases", "NoRelease", "ReleaseError", "ReleaseManifest", "RolloutStore", "build_source"]
