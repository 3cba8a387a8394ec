"""A recorded hub served over real HTTP: the hub's ``Service`` (not started: its cameras' files were recorded
already) with ``ApiServer`` (uvicorn) on a free loopback port, and one user per role.

Users: ``alice`` owns ``kitchen`` (camera A), ``vic`` is a viewer of ``kitchen``, ``bob`` owns ``porch``
(camera C, another owner B), ``old`` was alice's and is revoked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from edge_media.access import UserStore
from edge_media.api import ApiServer, create_app
from edge_media.config import load_config
from edge_media.service.catalog import ClipCatalog
from edge_media.service.hub import Service

from clip_hub import Hub, copy_hub, make_media, record_hub, write_config
from media import MovingBox, VideoSpec, make_video

ROLES = ("anonymous", "bad_token", "revoked", "viewer_a", "owner_a", "owner_b")
USERS = {"owner_a": ("alice", "owner", None, ()), "viewer_a": ("vic", "viewer", None, ("kitchen",)),
         "owner_b": ("bob", "owner", None, ()), "revoked": ("old", "owner", "alice", ())}
BAD_TOKEN = "this-is-not-a-token-of-this-hub-0123456789abcdef"


@dataclass
class ServedHub:
    hub: Hub
    service: Service
    server: ApiServer
    tokens: dict[str, str]  # role -> token
    clips: dict[str, str] = field(default_factory=dict)  # camera -> clip id

    @property
    def url(self) -> str:
        return self.server.url

    def headers(self, role: str) -> dict[str, str]:
        if role == "anonymous":
            return {}
        token = BAD_TOKEN if role == "bad_token" else self.tokens[role]
        return {"Authorization": f"Bearer {token}"}

    @property
    def state(self):
        """The app's state (users, link signer, limiter), for tests that need to reach behind the HTTP surface."""
        return self.server.app.state.api

    def client(self, role: str = "anonymous") -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(role), timeout=30.0)


def api_media(folder: Path) -> dict[str, Path]:
    """kitchen (alice): a smoke alarm on its audio track; porch (bob): three visits, three motion clips."""
    media = make_media(folder)
    boxes = [MovingBox(1.5, 2.5), MovingBox(5.5, 6.5), MovingBox(9.5, 10.5)]
    media["porch"] = make_video(folder / "porch3.mp4", VideoSpec(duration_s=13, boxes=boxes))
    return media


def record_api_hub(folder: Path, *, storage: str = "") -> tuple[Hub, dict[str, Path]]:
    """``api_media`` recorded by the real service; ``storage``: a ``[storage]`` table (TOML lines)."""
    for sub in ("media", "hub"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    media = api_media(folder / "media")
    return record_hub(folder / "hub", media, storage=storage), media


@contextmanager
def served_hub(recorded: Hub, folder: Path, media: dict[str, Path], *, api: str = "",
               storage: str = "") -> Iterator[ServedHub]:
    """A copy of ``recorded`` served by the API; ``api``: extra ``[api]`` settings, ``storage``: a ``[storage]``
    table (TOML lines)."""
    hub = copy_hub(recorded, folder, media)
    if storage:
        write_config(hub.config, hub.data, media, storage=storage)
    with hub.config.open("a") as f:
        f.write(f"\n[api]\nport = 0\n{api}\n")
    service = Service(load_config(hub.config))
    users = UserStore(service.ctx.db)
    tokens = {}
    for role, (name, kind, owner, cameras) in USERS.items():
        tokens[role] = users.add(name, kind, owner=owner, cameras=cameras)[1]
    users.revoke("old")
    server = ApiServer(create_app(service), "127.0.0.1", 0)
    server.start()
    served = ServedHub(hub, service, server, tokens)
    catalog = ClipCatalog(service.ctx)
    for camera in media:
        found = catalog.list_clips(camera=camera)
        if found:
            served.clips[camera] = found[0].clip_id
    try:
        yield served
    finally:
        server.stop()
        service.close()
