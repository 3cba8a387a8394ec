"""Finished clips → outbox items: deterministic keys, tags and the deadline of the owner's plan.

This is the one place that knows both the recorder's sidecar and the uploader's outbox. The
upload itself is the worker's job; here we only decide *what* goes *where*, durably.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from recorder import ClipSidecar
from uploader.outbox import Outbox, OutboxItem
from uploader.retention import format_utc, parse_utc, retain_until

from .context import HubContext

log = logging.getLogger(__name__)


def clip_keys(sidecar: ClipSidecar, cam_hash: str) -> tuple[str, str]:
    """Deterministic keys: clips/<camera-hash>/<YYYY>/<MM>/<DD>/<clip-id>.{mp4|mkv,json}; the clip's
    extension is its container's (Matroska for codecs MP4 cannot hold)."""
    day = parse_utc(sidecar.wall_start).strftime("%Y/%m/%d")
    base = f"clips/{cam_hash}/{day}/{sidecar.clip_id}"
    return f"{base}{Path(sidecar.file).suffix or '.mp4'}", f"{base}.json"


def clip_tags(sidecar: ClipSidecar, *, plan: str, days: int, cam_hash: str) -> dict[str, str]:
    labels = sorted({e.label for e in sidecar.events}) or ["none"]
    return {
        "retain-until": format_utc(retain_until(parse_utc(sidecar.wall_end), days)),
        "plan": plan,
        "event": "+".join(labels),
        "camera-hash": cam_hash,
        "kind": "clip",
    }


class ClipPublisher:
    def __init__(self, ctx: HubContext, outbox: Outbox, *, wake: Callable[[], None] = lambda: None,
                 after_enqueue: Callable[[], None] = lambda: None, keep_local: bool = False) -> None:
        self.ctx, self.outbox, self.wake, self.after_enqueue = ctx, outbox, wake, after_enqueue
        self.keep_local = keep_local

    def item_for(self, path: Path, sidecar: ClipSidecar) -> OutboxItem:
        cfg = self.ctx.config
        owner = self.ctx.owner_of(sidecar.camera)
        plan = cfg.plan_for(owner)
        cam_hash = self.ctx.camera_hash(sidecar.camera)
        clip_key, sidecar_key = clip_keys(sidecar, cam_hash)
        tags = clip_tags(sidecar, plan=plan, days=cfg.plans[plan], cam_hash=cam_hash)
        return OutboxItem(
            clip_id=sidecar.clip_id, owner=owner, camera_hash=cam_hash, clip_path=path,
            sidecar_path=self.ctx.spool.sidecar_path(sidecar.clip_id), clip_key=clip_key,
            sidecar_key=sidecar_key, tags=tags, plan=plan, size=sidecar.size_bytes, sha256=sidecar.sha256,
            wall_end=sidecar.wall_end, retain_until=parse_utc(tags["retain-until"]).timestamp())

    def submit(self, path: Path, sidecar: ClipSidecar) -> None:
        """The recorder's ``on_clip``: queue the clip for upload (exactly once)."""
        if self.outbox.enqueue(self.item_for(path, sidecar)):
            log.info("queued clip %s of %s for upload", sidecar.clip_id, sidecar.camera)
            self.wake()
        self.after_enqueue()

    def requeue_spool(self) -> int:
        """Start-up: queue spooled clips the outbox does not know; remove leftovers of done ones."""
        queued = 0
        for path, sidecar in self.ctx.spool.ready():
            known = self.outbox.get(sidecar.clip_id)
            if known is None:
                queued += self.outbox.enqueue(self.item_for(path, sidecar))
            elif known.state in ("done", "dropped") and not self.keep_local:
                self.ctx.spool.remove(sidecar.clip_id)  # a crash came between mark-done and delete
        if queued:
            log.info("queued %d spooled clips left by a previous run", queued)
            self.wake()
        return queued
