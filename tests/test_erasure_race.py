"""An owner's erasure while the upload worker is busy leaves nothing of the owner behind (issue 9, defect 8).

Real parts: a moto S3 server over HTTP, a real SQLite file, a running ``UploadWorker`` thread and real encoded
clips. ``SlowStore`` forwards every call to the real store and only adds latency (as a far-away S3 has), which
widens the windows in which the worker and the erasure interleave; ``hold_put`` can hold one PUT until the
test lets it go, to place an upload exactly across an erasure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import pytest

from edge_media.privacy import OwnerRights, OwnerScope
from recorder import Spool
from uploader import ObjectInfo, ObjectStore, StoreError
from uploader.db import Database
from uploader.index import ClipIndex
from uploader.outbox import Outbox, OutboxItem
from uploader.worker import UploadWorker

from media import MovingBox, VideoSpec, make_video

TRIALS = 12
ALICE, BOB = OwnerScope("alice", {"garden": "a11ce0000000000a"}), OwnerScope("bob", {"gate": "b0b0000000000b0b"})
FAST = {"backoff_initial_s": 0.05, "backoff_cap_s": 0.4, "idle_poll_s": 0.2}


class SlowStore(ObjectStore):
    """A real store with latency on PUT, LIST and DELETE; the PUT of ``hold_put`` (a key) returns only when
    released (the object is stored by then)."""

    def __init__(self, inner: ObjectStore, *, put_s: float, list_s: float, remove_s: float) -> None:
        self.inner, self.put_s, self.list_s, self.remove_s = inner, put_s, list_s, remove_s
        self.hold_put: str | None = None
        self.held, self.release = threading.Event(), threading.Event()

    def put_object(self, key: str, path: Path, **options: object) -> ObjectInfo:
        time.sleep(self.put_s)
        info = self.inner.put_object(key, path, **options)  # type: ignore[arg-type]
        if key == self.hold_put:  # stored, but the worker does not know yet
            self.held.set()
            self.release.wait(10)
        return info

    def put_bytes(self, key: str, data: bytes, **options: object) -> ObjectInfo:
        time.sleep(self.put_s)
        return self.inner.put_bytes(key, data, **options)  # type: ignore[arg-type]

    def get_object(self, key: str) -> bytes:
        return self.inner.get_object(key)

    def fget_object(self, key: str, dest: Path) -> ObjectInfo:
        return self.inner.fget_object(key, dest)

    def stat_object(self, key: str) -> ObjectInfo:
        return self.inner.stat_object(key)

    def list_objects(self, prefix: str = "", *, with_tags: bool = False) -> Iterator[ObjectInfo]:
        time.sleep(self.list_s)
        return self.inner.list_objects(prefix, with_tags=with_tags)

    def remove_objects(self, keys: Iterable[str]) -> list[StoreError]:
        time.sleep(self.remove_s)
        return self.inner.remove_objects(keys)

    def get_tags(self, key: str) -> dict[str, str]:
        return self.inner.get_tags(key)

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        self.inner.set_tags(key, tags)


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory) -> Path:
    spec = VideoSpec(width=320, height=180, duration_s=2, fps=10, gop=10, boxes=[MovingBox(0.5, 1.5)])
    return make_video(tmp_path_factory.mktemp("race") / "clip.mp4", spec)


def queue(outbox: Outbox, spool: Path, clip_file: Path, scope: OwnerScope, n: int, *, body: bool) -> list[str]:
    """``n`` finished clips of ``scope``'s camera: a real clip file and its sidecar each, queued for upload."""
    spool.mkdir(parents=True, exist_ok=True)
    [cam_hash] = scope.cameras.values()
    data = clip_file.read_bytes()
    ids = []
    for i in range(n):
        clip_id = f"20261130T1200{i:02d}Z-{cam_hash[:8]}"
        clip, sidecar = spool / f"{clip_id}.mp4", spool / f"{clip_id}.json"
        shutil.copyfile(clip_file, clip)
        text = json.dumps({"clip_id": clip_id, "camera_hash": cam_hash})
        sidecar.write_text(text)
        base = f"clips/{cam_hash}/2026/11/30/{clip_id}"
        tags = {"plan": "basic", "retain-until": "2026-12-07T12:00:00Z", "kind": "clip", "camera-hash": cam_hash}
        outbox.enqueue(OutboxItem(
            clip_id=clip_id, owner=scope.owner, camera_hash=cam_hash, clip_path=clip, sidecar_path=sidecar,
            clip_key=f"{base}.mp4", sidecar_key=f"{base}.json", tags=tags, plan="basic", size=len(data),
            sha256=hashlib.sha256(data).hexdigest(), wall_end="2026-11-30T12:00:05Z", retain_until=1_796_644_800.0,
            sidecar_body=text if body else None))  # fmt: skip
        ids.append(clip_id)
    return ids


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.01)
    return condition()


def keys_under(store: ObjectStore, scope: OwnerScope) -> list[str]:
    return [o.key for prefix in scope.prefixes for o in store.list_objects(prefix)]


def assert_nothing_left(store: ObjectStore, db: Database, outbox: Outbox, ids: list[str],
                        caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    assert keys_under(store, ALICE) == [], "no object of the erased owner in the store"
    assert ClipIndex(db).for_owner("alice") == [], "no index row"
    assert [i for i in ids if outbox.get(i) is not None] == [], "no outbox row"
    failures = [r.getMessage() for r in caplog.records if "parked as failed" in r.getMessage()]
    assert failures == [], "an erasure is not an upload failure"


@pytest.mark.parametrize("trial", range(TRIALS))
def test_erasure_while_the_worker_uploads_the_owners_clips_leaves_nothing(
        trial: int, tmp_path: Path, s3_store: ObjectStore, clip_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Regression (issue 9, defect 8): in 2 of 9 erasures started while uploads ran, objects of the erased owner
    stayed in S3 with no index or outbox row (an upload finishing between the erasure's listing and its commit;
    a sidecar deleted after its clip was uploaded, logged as "parked as failed")."""
    caplog.set_level(logging.INFO)
    db = Database(tmp_path / "state.db")
    outbox = Outbox(db)
    store = SlowStore(s3_store, put_s=0.01 + 0.005 * (trial % 3), list_s=0.02, remove_s=0.05)
    alice = queue(outbox, tmp_path / "spool", clip_file, ALICE, 12, body=trial % 2 == 0)
    queue(outbox, tmp_path / "spool", clip_file, BOB, 4, body=True)
    worker = UploadWorker(store, outbox, **FAST)
    worker.start()
    try:
        # Erase after a few of alice's clips are up, while the rest are queued or on their way.
        assert wait_for(lambda: len(ClipIndex(db).for_owner("alice")) >= 2 * (1 + trial % 4))
        report = OwnerRights(store, Spool(tmp_path / "hub-spool"), db).erase(ALICE, outbox=outbox)
        assert report.objects >= 2 * (1 + trial % 4)
        assert wait_for(lambda: len(ClipIndex(db).for_owner("bob")) == 8), "the other owner is not held back"
    finally:
        assert worker.stop(drain_timeout_s=10)
    assert_nothing_left(s3_store, db, outbox, alice, caplog)
    assert len(keys_under(s3_store, BOB)) == 8
    db.close()


def test_an_upload_the_erasure_stopped_waiting_for_is_taken_back(
        tmp_path: Path, s3_store: ObjectStore, clip_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The erasure gives up waiting (a worker that seems stuck) and deletes the row and the files just after the
    clip was PUT; the worker then finds its sidecar file gone and its row erased: it removes the clip it put
    instead of parking a row that no longer exists (defect 8's "parked as failed" with the clip left in S3)."""
    caplog.set_level(logging.INFO)
    db = Database(tmp_path / "state.db")
    outbox = Outbox(db)
    store = SlowStore(s3_store, put_s=0.0, list_s=0.0, remove_s=0.0)
    [clip_id] = queue(outbox, tmp_path / "spool", clip_file, ALICE, 1, body=False)
    store.hold_put = outbox.get(clip_id).clip_key
    worker = UploadWorker(store, outbox, **FAST)
    worker.start()
    try:
        assert store.held.wait(10)
        OwnerRights(store, Spool(tmp_path / "hub-spool"), db).erase(ALICE, outbox=outbox, upload_wait_s=0.0)
        assert not (tmp_path / "spool" / f"{clip_id}.json").exists()
        store.release.set()
        assert wait_for(lambda: any("erased during its upload" in r.getMessage() for r in caplog.records))
    finally:
        store.release.set()
        assert worker.stop(drain_timeout_s=10)
    assert_nothing_left(s3_store, db, outbox, [clip_id], caplog)
    db.close()
