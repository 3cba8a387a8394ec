"""What the service and the storage commands share: store, spool, database, install secret."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recorder import Spool
from uploader import ObjectStore
from uploader.db import Database

from ..config import Config
from ..privacy import OwnerScope
from ..privacy.identity import camera_hash, load_or_create_secret
from .storage import build_store

DB_NAME = "edge-media.db"


@dataclass
class HubContext:
    config: Config
    store: ObjectStore
    spool: Spool
    db: Database
    secret: bytes

    @classmethod
    def open(cls, config: Config, *, store: ObjectStore | None = None) -> HubContext:
        data = Path(config.service.data_dir)
        return cls(config=config, store=store if store is not None else build_store(config),
                   spool=Spool(config.spool_path), db=Database(data / DB_NAME),
                   secret=load_or_create_secret(data))

    def camera_hash(self, camera: str) -> str:
        return camera_hash(self.secret, camera)

    def scope(self, owner: str) -> OwnerScope:
        """Every source (camera or microphone) of ``owner``, by name and hash."""
        sources = [*self.config.cameras, *self.config.microphones]
        return OwnerScope(owner, {s.name: self.camera_hash(s.name) for s in sources if s.owner == owner})

    def owner_of(self, source: str) -> str:
        """Owner of a camera or microphone; a source since removed from the config keeps the default."""
        for s in [*self.config.cameras, *self.config.microphones]:
            if s.name == source:
                return s.owner
        return "owner"

    def close(self) -> None:
        self.db.close()
