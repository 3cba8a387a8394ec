"""An authenticated user as the API sees them, and the sources (cameras, microphones) they may see."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config


@dataclass(frozen=True)
class Principal:
    name: str
    role: str  # "owner" | "viewer"
    owner: str | None  # role owner: the owner id they act for
    cameras: tuple[str, ...]  # role viewer: the sources they were given

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"


def sources_of(principal: Principal, config: Config) -> frozenset[str]:
    """Every configured camera and microphone ``principal`` may see: an owner's are those whose ``owner`` is
    their owner id; a viewer's are the ones they were given that still exist in the config."""
    names = [(c.name, c.owner) for c in config.cameras] + [(m.name, m.owner) for m in config.microphones]
    if principal.is_owner:
        return frozenset(n for n, owner in names if owner == principal.owner)
    given = set(principal.cameras)
    return frozenset(n for n, _ in names if n in given)
