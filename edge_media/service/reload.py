"""What a new config file changes for a running hub (SIGHUP): which cameras and microphones to start, stop or
restart, and which settings only a restart can apply.

Pure: two validated configs in, a plan out. Sources are compared by name and by value (config models are
frozen pydantic models, so ``==`` compares every field): an unchanged camera is not touched at all, which
is the point -- its reader thread, pre-roll ring and open clip carry on through the reload. Every other
section (storage, service, recording, ...) is wired into long-lived parts at start-up; a change there is
reported as needing a restart and the running value stays in force, so the hub never runs half old, half new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..config import CameraConfig, Config, MicrophoneConfig

LIVE_SECTIONS = frozenset({"cameras", "microphones"})  # the only ones a reload applies


@dataclass(frozen=True)
class SourceChanges:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()

    @property
    def stopping(self) -> frozenset[str]:
        """Sources whose running worker goes (removed, or replaced by a new one)."""
        return frozenset(self.removed) | frozenset(self.restarted)

    @property
    def starting(self) -> frozenset[str]:
        return frozenset(self.added) | frozenset(self.restarted)


@dataclass(frozen=True)
class ReloadReport:
    """What a reload did: sources (cameras and microphones) added, removed and restarted, and the changed
    sections that wait for a restart."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    needs_restart: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.restarted)

    def describe(self) -> str:
        if not self.changed:
            return "config reloaded: no camera or microphone changed"
        parts = [f"{what} {', '.join(names)}" for what, names in
                 (("added", self.added), ("removed", self.removed), ("restarted", self.restarted)) if names]
        return "config reloaded: " + "; ".join(parts)


@dataclass(frozen=True)
class ReloadPlan:
    cameras: SourceChanges
    microphones: SourceChanges
    needs_restart: tuple[str, ...]
    config: Config  # what the hub runs from now on: the new sources, the running values of everything else

    @property
    def report(self) -> ReloadReport:
        cams, mics = self.cameras, self.microphones
        return ReloadReport(added=cams.added + mics.added, removed=cams.removed + mics.removed,
                            restarted=cams.restarted + mics.restarted, needs_restart=self.needs_restart)


def plan_reload(running: Config, new: Config) -> ReloadPlan:
    cameras = _diff(_enabled(running.cameras), _enabled(new.cameras))
    mics = _diff(_enabled(running.microphones), _enabled(new.microphones))
    mics = _follow_cameras(mics, _enabled(running.microphones), _enabled(new.microphones), cameras)
    needs_restart = tuple(name for name in type(running).model_fields
                          if name not in LIVE_SECTIONS and getattr(running, name) != getattr(new, name))
    # model_copy skips validation, which is right here: ``new`` as a whole was validated, and the sources
    # are checked against each other only (names unique, a microphone's camera exists), all taken from it.
    config = running.model_copy(update={"cameras": new.cameras, "microphones": new.microphones})
    return ReloadPlan(cameras, mics, needs_restart, config)


Source = CameraConfig | MicrophoneConfig


def _enabled(sources: Sequence[Source]) -> dict[str, Source]:
    return {s.name: s for s in sources if s.enabled}


def _diff(old: dict[str, Source], new: dict[str, Source]) -> SourceChanges:
    return SourceChanges(added=tuple(n for n in new if n not in old), removed=tuple(n for n in old if n not in new),
                         restarted=tuple(n for n in new if n in old and new[n] != old[n]))


def _follow_cameras(mics: SourceChanges, old: dict[str, Source], new: dict[str, Source],
                    cameras: SourceChanges) -> SourceChanges:
    """A microphone paired with a camera feeds that camera's pipeline: when the camera's worker is replaced or
    goes, the microphone restarts too (pairing it with the new pipeline, or recording on its own)."""
    follow = tuple(name for name, mic in new.items()
                   if name in old and name not in mics.restarted and isinstance(mic, MicrophoneConfig)
                   and mic.camera and mic.camera in cameras.stopping)
    return SourceChanges(mics.added, mics.removed, mics.restarted + follow)
