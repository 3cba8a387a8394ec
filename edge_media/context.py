"""What the service and the storage commands share: store, spool, database, install secret."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recorder import Spool
from uploader import ObjectStore
from uploader.db import Database

from .config import Config
from .identity import camera_hash, load_or_create_secret
from .privacy import OwnerScope
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
        cams = {c.name: self.camera_hash(c.name) for c in self.config.cameras if c.owner == owner}
        return OwnerScope(owner, cams)

    def owner_of(self, camera: str) -> str:
        return self.config.camera(camera).owner

    def close(self) -> None:
        self.db.close()
