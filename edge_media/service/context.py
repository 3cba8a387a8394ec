"""What the service and the storage commands share: store, spool, database, install secret."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from recorder import Spool
from uploader import ObjectStore
from uploader.db import Database

from ..config import CameraConfig, Config, MicrophoneConfig
from ..errors import EXIT_USAGE, EdgeMediaError
from ..privacy import OwnerScope
from ..privacy.identity import camera_hash, load_or_create_secret
from .storage import build_store

DB_NAME = "edge-media.db"


class DataDirError(EdgeMediaError):
    """``service.data_dir`` (or a directory configured below it) cannot be created or written."""

    exit_code = EXIT_USAGE


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
        try:
            _usable_dir(data)
            return cls(config=config, store=store if store is not None else build_store(config),
                       spool=Spool(config.spool_path), db=Database(data / DB_NAME),
                       secret=load_or_create_secret(data))
        except OSError as exc:  # e.g. the spool or store dir configured outside data_dir
            raise DataDirError(f"cannot use directory {exc.filename or data}: {exc.strerror or exc}") from None

    def camera_hash(self, camera: str) -> str:
        return camera_hash(self.secret, camera)

    def scope(self, owner: str) -> OwnerScope:
        """Every source (camera or microphone) of ``owner``, by name and hash."""
        sources: list[CameraConfig | MicrophoneConfig] = [*self.config.cameras, *self.config.microphones]
        return OwnerScope(owner, {s.name: self.camera_hash(s.name) for s in sources if s.owner == owner})

    def owner_of(self, source: str) -> str:
        """Owner of a camera or microphone; a source since removed from the config keeps the default."""
        sources: list[CameraConfig | MicrophoneConfig] = [*self.config.cameras, *self.config.microphones]
        for s in sources:
            if s.name == source:
                return s.owner
        return "owner"

    def close(self) -> None:
        self.db.close()


def _usable_dir(path: Path) -> None:
    # Checked before anything is created below it: a data_dir under a file or a read-only mount must be one
    # clear line at start-up, not an sqlite or mkdir traceback half-way through opening the hub.
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"cannot create service.data_dir {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataDirError(f"service.data_dir {path} is not writable by this user")
