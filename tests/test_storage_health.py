"""StorageHealth: storage problems become notices when they begin (after the grace period for an unreachable
store) and when they clear — once each. Real parts: the upload worker against an S3 endpoint nobody listens on
(then a local store once "the network is back"), the outbox and the spool quota on a real database."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edge_media.service.bus import StorageNotice
from edge_media.service.health import StorageHealth
from edge_media.service.housekeeping import SpoolQuota
from recorder import Spool
from uploader import LocalStore, S3Store
from uploader.db import Database
from uploader.outbox import Outbox, OutboxItem
from uploader.worker import UploadWorker

from mqtt_fixtures import free_port


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_item(folder: Path, clip_id: str) -> OutboxItem:
    folder.mkdir(parents=True, exist_ok=True)
    clip, sidecar = folder / f"{clip_id}.mp4", folder / f"{clip_id}.json"
    clip.write_bytes(b"clip bytes")
    sidecar.write_text(json.dumps({"clip_id": clip_id}))
    return OutboxItem(clip_id=clip_id, owner="alice", camera_hash="cam1", clip_path=clip, sidecar_path=sidecar,
                      clip_key=f"clips/cam1/{clip_id}.mp4", sidecar_key=f"clips/cam1/{clip_id}.json",
                      tags={"plan": "basic", "kind": "clip"}, plan="basic", size=10,
                      sha256=hashlib.sha256(b"clip bytes").hexdigest(), wall_end="2024-01-02T03:04:05Z",
                      retain_until=1_800_000_000.0)


def rig(db: Database, tmp_path: Path, *, quota_bytes: int = 10**9, policy: str = "drop-oldest"):
    clock = Clock()
    outbox = Outbox(db, clock=clock)
    store = S3Store(endpoint=f"127.0.0.1:{free_port()}", access_key="k", secret_key="hidden-s3-secret",
                    bucket="hub-clips", secure=False, create_bucket=False, connect_timeout=1.0)
    worker = UploadWorker(store, outbox, clock=clock, backoff_initial_s=1.0, backoff_cap_s=2.0)
    quota = SpoolQuota(Spool(tmp_path / "spool"), outbox, db, quota_bytes=quota_bytes, policy=policy)
    notices: list[StorageNotice] = []
    health = StorageHealth(notices.append, worker=worker, outbox=outbox, quota=quota, down_after_s=300,
                           clock=clock)
    return clock, outbox, worker, quota, health, notices


def seen(notices: list[StorageNotice]) -> list[tuple[str, bool]]:
    return [(n.problem, n.active) for n in notices]


def test_unreachable_store_is_notified_after_the_grace_period_and_when_back(db: Database, tmp_path: Path) -> None:
    clock, outbox, worker, _, health, notices = rig(db, tmp_path)
    outbox.enqueue(make_item(tmp_path / "clips", "c1"))
    assert worker.run_once()  # connection refused: a blip
    health.poll()
    clock.now += 10
    assert worker.run_once()  # again: an outage
    assert worker.store_down
    health.poll()  # the outage starts being timed here
    clock.now += 299
    health.poll()
    assert notices == []  # a few minutes down is normal on a home uplink
    clock.now += 2
    health.poll()
    health.poll()
    assert seen(notices) == [("store_unreachable", True)]  # once, not per poll
    assert "no upload for 301 s" in notices[0].detail and "hidden-s3-secret" not in notices[0].detail

    worker.store = LocalStore(tmp_path / "store")  # the network is back
    clock.now += 10
    assert worker.run_once() and not worker.store_down
    health.poll()
    assert seen(notices) == [("store_unreachable", True), ("store_unreachable", False)]


def test_failed_upload_is_a_problem_until_no_clip_is_parked(db: Database, tmp_path: Path) -> None:
    _, outbox, _, _, health, notices = rig(db, tmp_path)
    outbox.enqueue(make_item(tmp_path / "clips", "c1"))
    item = outbox.claim()
    assert item is not None and outbox.mark_failed(item, "AccessDenied: bad credentials")
    health.poll()
    health.poll()
    assert seen(notices) == [("upload_failed", True)] and "1 clip parked failed" in notices[0].detail
    outbox.recover()  # the next start (with fixed settings) takes failed clips back
    health.poll()
    assert seen(notices) == [("upload_failed", True), ("upload_failed", False)]


def test_quota_reached_while_recording_is_stopped_and_clears_later(db: Database, tmp_path: Path) -> None:
    clock, _, _, quota, health, notices = rig(db, tmp_path, quota_bytes=1000, policy="stop-recording")
    big = quota.spool.ready_dir / "x.mp4"
    big.write_bytes(b"\0" * 5000)
    who = {"owner": "alice", "source": "porch", "source_hash": "h"}
    assert not quota.make_room(100, **who)  # over quota: the clip is refused
    health.poll()
    assert seen(notices) == [("quota_reached", True)] and "stop-recording" in notices[0].detail
    big.unlink()  # uploads drained the spool
    assert quota.admit(**who)
    clock.now += 30
    health.poll()
    assert len(notices) == 1  # not cleared at the first quiet moment: no flapping at the edge
    clock.now += 31
    health.poll()
    assert seen(notices) == [("quota_reached", True), ("quota_reached", False)]
