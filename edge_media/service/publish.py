"""Finished clips → outbox items: deterministic keys, tags and the deadline of the owner's plan.

This is the one place that knows both the recorder's sidecar and the uploader's outbox. The
upload itself is the worker's job; here we only decide *what* goes *where*, durably.

Nothing that leaves the hub names a camera, microphone or owner: keys and tags carry the camera's
HMAC, and the sidecar that is uploaded is a redacted copy built here from an allowlist of fields (the
spool's own sidecar keeps the name, which the hub needs); a field added to the sidecar is not uploaded
until someone adds it to the list below.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recorder import ClipSidecar
from uploader.outbox import OPEN_STATES, Outbox, OutboxItem
from uploader.retention import format_utc, parse_utc, retain_until

from .context import HubContext

log = logging.getLogger(__name__)


# Sidecar fields that may leave the hub as they are; "camera" (a name) is replaced by "camera_hash".
UPLOADED_FIELDS = ("clip_id", "events", "stream_start", "stream_end", "wall_start", "wall_end", "duration_s",
                   "size_bytes", "sha256", "model_versions", "video_codec", "audio_codec", "width", "height",
                   "file", "container", "recovered", "schema")
REDACTED_FIELDS = ("camera",)
UPLOADED_EVENT_FIELDS = ("label", "score", "start", "last_seen", "end", "continued")


def upload_sidecar(sidecar: ClipSidecar, cam_hash: str) -> str:
    """The JSON uploaded beside the clip: the sidecar's allowed fields and the camera's hash, no names."""
    data: dict[str, Any] = {name: value for name, value in sidecar.to_dict().items() if name in UPLOADED_FIELDS}
    data["events"] = [{k: e[k] for k in UPLOADED_EVENT_FIELDS if k in e} for e in data.get("events", [])]
    data["camera_hash"] = cam_hash
    return json.dumps(data, indent=2, sort_keys=True)


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
            wall_end=sidecar.wall_end, retain_until=parse_utc(tags["retain-until"]).timestamp(),
            sidecar_body=upload_sidecar(sidecar, cam_hash))

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
            elif known.state in OPEN_STATES and known.sidecar_body is None:
                # Queued by a version that uploaded the spool's sidecar as it is (with the camera's name).
                self.outbox.set_sidecar_body(sidecar.clip_id, upload_sidecar(sidecar, known.camera_hash))
            elif known.state in ("done", "dropped") and not self.keep_local:
                self.ctx.spool.remove(sidecar.clip_id)  # a crash came between mark-done and delete
        if queued:
            log.info("queued %d spooled clips left by a previous run", queued)
            self.wake()
        return queued
