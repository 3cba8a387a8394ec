"""Moves finished clips from the spool into the object store, tagged with their deadline.

This is the only place that knows both the recorder's sidecar and the uploader's store. It runs
in its own thread; a failed put leaves the clip in the spool and is retried with backoff, so a
down store loses nothing. (The durable SQLite outbox replaces the in-memory queue in the storage
issue; the keys and tags here are already the final ones, so retries are idempotent.)
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from recorder import ClipSidecar, Spool
from uploader import ObjectStore, StoreError
from uploader.retention import format_utc, parse_utc, retain_until

from .identity import camera_hash
from .sources.backoff import Backoff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishPolicy:
    secret: bytes
    plan: str
    plan_days: int


def clip_keys(sidecar: ClipSidecar, cam_hash: str) -> tuple[str, str]:
    """Deterministic keys: clips/<camera-hash>/<YYYY>/<MM>/<DD>/<clip-id>.{mp4,json}."""
    day = parse_utc(sidecar.wall_start).strftime("%Y/%m/%d")
    base = f"clips/{cam_hash}/{day}/{sidecar.clip_id}"
    return f"{base}.mp4", f"{base}.json"


def clip_tags(sidecar: ClipSidecar, policy: PublishPolicy, cam_hash: str) -> dict[str, str]:
    labels = sorted({e.label for e in sidecar.events}) or ["none"]
    deadline = retain_until(parse_utc(sidecar.wall_end), policy.plan_days)
    return {
        "retain-until": format_utc(deadline),
        "plan": policy.plan,
        "event": "+".join(labels),
        "camera-hash": cam_hash,
        "kind": "clip",
    }


class ClipPublisher:
    def __init__(self, store: ObjectStore, spool: Spool, policy: PublishPolicy) -> None:
        self.store, self.spool, self.policy = store, spool, policy
        self.published: list[str] = []  # keys of clips stored by this process
        self._queue: queue.Queue[tuple[Path, ClipSidecar] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, path: Path, sidecar: ClipSidecar) -> None:
        self._queue.put((path, sidecar))

    def start(self) -> None:
        for path, sidecar in self.spool.ready():  # clips left by a previous run
            self.submit(path, sidecar)
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Publish what is queued (bounded by the timeout), then stop; the rest stays spooled."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(drain_timeout_s)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def publish(self, path: Path, sidecar: ClipSidecar) -> str:
        """Upload one clip and its sidecar, then drop the spooled copy. Returns the clip key."""
        cam = camera_hash(self.policy.secret, sidecar.camera)
        clip_key, meta_key = clip_keys(sidecar, cam)
        tags = clip_tags(sidecar, self.policy, cam)
        info = self.store.put_object(clip_key, path, content_type="video/mp4",
                                     metadata={"clip-id": sidecar.clip_id}, tags=tags)
        # The store hashed what it received; it must be the clip the recorder hashed when it closed it.
        if info.size != sidecar.size_bytes or (info.sha256 and info.sha256 != sidecar.sha256):
            raise StoreError("BadDigest", f"stored object differs from the spooled clip ({info.size} bytes)",
                             key=clip_key)
        self.store.put_bytes(meta_key, sidecar.to_json().encode(), content_type="application/json", tags=tags)
        self.spool.remove(sidecar.clip_id)
        self.published.append(clip_key)
        log.info("stored clip %s (%d bytes, retain until %s)", clip_key, info.size, tags["retain-until"])
        return clip_key

    def _run(self) -> None:
        backoff = Backoff(initial_s=1.0, cap_s=60.0)
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            try:
                self.publish(*item)
                backoff.reset()
            except (StoreError, OSError) as exc:
                delay = backoff.next_delay()
                log.warning("upload of clip %s failed (%s); retrying in %.0f s", item[1].clip_id, exc, delay)
                self._stop.wait(delay)
                self._queue.put(item)
