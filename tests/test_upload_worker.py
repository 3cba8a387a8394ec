"""uploader.UploadWorker against a real S3 server (moto_server over HTTP) with real files and a real SQLite file.

The only wrapper is ``CountingStore``: it forwards every call to the real store and counts it, so tests can
prove the worker does not spin (and, once, run the owner's erasure in the middle of a PUT).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import pytest

from uploader import LocalStore, ObjectInfo, ObjectStore, StoreError
from uploader.db import Database
from uploader.index import ClipIndex
from uploader.outbox import Outbox, OutboxItem
from uploader.s3_store import is_permanent
from uploader.worker import UploadWorker

from s3_fixtures import MOTO_ACCESS_KEY, MOTO_SECRET_KEY, MotoServer, S3Server, empty_bucket

TAGS = {"plan": "basic", "retain-until": "2024-02-01T03:04:05Z", "event": "motion", "kind": "clip",
        "camera-hash": "cam1"}  # fmt: skip
FAST = {"backoff_initial_s": 0.05, "backoff_cap_s": 0.4}


class CountingStore(ObjectStore):
    """Forwards to a real store, counting calls per method; ``before_put`` runs before each PUT."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.before_put: Callable[[str], None] | None = None

    def total(self) -> int:
        return sum(self.calls.values())

    def put_object(self, key: str, path: Path, **options: object) -> ObjectInfo:
        self.calls["put_object"] += 1
        if self.before_put is not None:
            self.before_put(key)
        return self.inner.put_object(key, path, **options)  # type: ignore[arg-type]

    def put_bytes(self, key: str, data: bytes, **options: object) -> ObjectInfo:
        self.calls["put_bytes"] += 1
        return self.inner.put_bytes(key, data, **options)  # type: ignore[arg-type]

    def get_object(self, key: str) -> bytes:
        self.calls["get_object"] += 1
        return self.inner.get_object(key)

    def fget_object(self, key: str, dest: Path) -> ObjectInfo:
        self.calls["fget_object"] += 1
        return self.inner.fget_object(key, dest)

    def stat_object(self, key: str) -> ObjectInfo:
        self.calls["stat_object"] += 1
        return self.inner.stat_object(key)

    def list_objects(self, prefix: str = "", *, with_tags: bool = False) -> Iterator[ObjectInfo]:
        self.calls["list_objects"] += 1
        return self.inner.list_objects(prefix, with_tags=with_tags)

    def remove_objects(self, keys: Iterable[str]) -> list[StoreError]:
        self.calls["remove_objects"] += 1
        return self.inner.remove_objects(keys)

    def get_tags(self, key: str) -> dict[str, str]:
        self.calls["get_tags"] += 1
        return self.inner.get_tags(key)

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        self.calls["set_tags"] += 1
        self.inner.set_tags(key, tags)


def make_item(spool: Path, clip_id: str, *, size: int = 20_000, owner: str = "alice",
              tags: Mapping[str, str] = TAGS) -> OutboxItem:  # fmt: skip
    """A finished clip as the recorder leaves it: random bytes (content does not matter here) + JSON sidecar."""
    spool.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    clip, sidecar = spool / f"{clip_id}.mp4", spool / f"{clip_id}.json"
    clip.write_bytes(data)
    sidecar.write_text(json.dumps({"clip_id": clip_id, "camera": "front door"}))
    base = f"clips/cam1/2024/01/02/{clip_id}"
    return OutboxItem(
        clip_id=clip_id, owner=owner, camera_hash="cam1", clip_path=clip, sidecar_path=sidecar,
        clip_key=f"{base}.mp4", sidecar_key=f"{base}.json", tags=tags, plan="basic", size=size,
        sha256=hashlib.sha256(data).hexdigest(), wall_end="2024-01-02T03:04:05Z", retain_until=1_706_756_645.0,
    )  # fmt: skip


def keys_in(store: ObjectStore) -> list[str]:
    return [o.key for o in store.list_objects()]


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def outbox(db: Database) -> Outbox:
    return Outbox(db)


def test_uploads_clip_and_sidecar_indexes_them_and_frees_the_spool(
    s3_store: ObjectStore, outbox: Outbox, db: Database, tmp_path: Path
) -> None:
    item = make_item(tmp_path / "spool", "c1")
    outbox.enqueue(item)
    worker = UploadWorker(s3_store, outbox, **FAST)
    assert worker.run_once() is True and worker.run_once() is False
    assert worker.uploaded == 1 and worker.last_error is None
    assert keys_in(s3_store) == [item.sidecar_key, item.clip_key]  # ".json" < ".mp4"
    clip = s3_store.stat_object(item.clip_key)
    assert (clip.size, clip.sha256, clip.content_type) == (item.size, item.sha256, "video/mp4")
    assert clip.metadata == {"clip-id": "c1"} and s3_store.get_tags(item.clip_key) == TAGS
    sidecar = s3_store.stat_object(item.sidecar_key)
    assert sidecar.content_type == "application/json" and s3_store.get_tags(item.sidecar_key) == TAGS
    assert outbox.get("c1").state == "done"
    rows = {o.kind: o for o in ClipIndex(db).for_clip("c1")}
    assert set(rows) == {"clip", "sidecar"} and rows["clip"].sha256 == item.sha256
    assert rows["sidecar"].sha256 == sidecar.sha256 and all(r.local_path is None for r in rows.values())
    assert rows["clip"].retain_until == item.retain_until and rows["clip"].owner == "alice"
    assert not item.clip_path.exists() and not item.sidecar_path.exists()


def test_keep_local_keeps_the_files_and_records_their_path(
    s3_store: ObjectStore, outbox: Outbox, db: Database, tmp_path: Path
) -> None:
    item = make_item(tmp_path / "spool", "c1")
    outbox.enqueue(item)
    assert UploadWorker(s3_store, outbox, keep_local=True, **FAST).run_once()
    assert item.clip_path.exists() and item.sidecar_path.exists()
    rows = {o.kind: o.local_path for o in ClipIndex(db).for_clip("c1")}
    assert rows == {"clip": str(item.clip_path), "sidecar": str(item.sidecar_path)}


def test_works_on_the_local_directory_store(outbox: Outbox, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    item = make_item(tmp_path / "spool", "c1")
    outbox.enqueue(item)
    outbox.claim()  # a run took it, put the clip, and crashed before marking it done
    store.put_object(item.clip_key, item.clip_path)
    outbox.recover()
    counting = CountingStore(store)
    assert UploadWorker(counting, outbox, **FAST).run_once() and counting.calls["put_object"] == 1
    assert keys_in(store) == [item.sidecar_key, item.clip_key] and outbox.get("c1").state == "done"


def test_retry_after_a_crash_between_put_and_mark_done_uploads_nothing_twice(
    s3_store: ObjectStore, tmp_path: Path
) -> None:
    """Regression for "uploaded but not marked done": the PUT succeeded, the process died before the commit."""
    path = tmp_path / "state" / "uploader.db"
    first_db = Database(path)
    item = make_item(tmp_path / "spool", "c1")
    Outbox(first_db).enqueue(item)
    claimed = Outbox(first_db).claim()  # the worker took it ...
    s3_store.put_object(claimed.clip_key, claimed.clip_path, content_type="video/mp4", tags=TAGS)  # ... put it ...
    first_db.close()  # ... and crashed: row still 'inflight', sidecar never sent

    db = Database(path)
    try:
        outbox = Outbox(db)
        assert outbox.get("c1").state == "inflight" and outbox.recover() == 1
        counting = CountingStore(s3_store)
        worker = UploadWorker(counting, outbox, **FAST)
        assert worker.run_once()
        assert counting.calls["put_object"] == 1  # the sidecar only: the clip was found by stat
        assert keys_in(s3_store) == [item.sidecar_key, item.clip_key]
        assert outbox.get("c1").state == "done"
        assert sorted(o.key for o in ClipIndex(db).for_clip("c1")) == sorted([item.clip_key, item.sidecar_key])
        assert not item.clip_path.exists()
    finally:
        db.close()


def test_a_changed_object_under_the_key_is_replaced(s3_store: ObjectStore, outbox: Outbox, tmp_path: Path) -> None:
    item = make_item(tmp_path / "spool", "c1")
    s3_store.put_bytes(item.clip_key, b"a torn earlier attempt")
    outbox.enqueue(item)
    UploadWorker(s3_store, outbox, **FAST).run_once()
    assert s3_store.stat_object(item.clip_key).sha256 == item.sha256


def test_missing_local_files(s3_store: ObjectStore, outbox: Outbox, tmp_path: Path,
                             caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    uploaded = make_item(tmp_path / "spool", "gone-but-uploaded")
    s3_store.put_object(uploaded.clip_key, uploaded.clip_path)
    s3_store.put_object(uploaded.sidecar_key, uploaded.sidecar_path)
    lost = make_item(tmp_path / "spool", "gone")
    for item in (uploaded, lost):
        outbox.enqueue(item)
        item.clip_path.unlink()
        item.sidecar_path.unlink()
    worker = UploadWorker(s3_store, outbox, **FAST)
    assert worker.run_once() and worker.run_once()
    assert outbox.get("gone-but-uploaded").state == "done"
    failed = outbox.get("gone")
    assert failed.state == "failed" and "local file missing" in failed.last_error
    assert any(r.levelno == logging.ERROR and "local file missing" in r.getMessage() for r in caplog.records)
    assert not worker.paused  # one lost clip says nothing about the store


def test_an_item_the_store_rejects_is_parked_without_pausing(
    s3_store: ObjectStore, outbox: Outbox, tmp_path: Path
) -> None:
    outbox.enqueue(make_item(tmp_path / "spool", "bad", tags={"event": "semi;colon"}))
    good = make_item(tmp_path / "spool", "good")
    outbox.enqueue(good)
    worker = UploadWorker(s3_store, outbox, **FAST)
    assert worker.run_once() and not worker.paused
    assert outbox.get("bad").state == "failed" and "InvalidTag" in outbox.get("bad").last_error
    assert worker.run_once() and outbox.get("good").state == "done" and worker.last_error is None


def test_erasure_during_the_upload_leaves_nothing(s3_store: ObjectStore, outbox: Outbox, db: Database,
                                                 tmp_path: Path) -> None:  # fmt: skip
    item = make_item(tmp_path / "spool", "c1")
    outbox.enqueue(item)
    counting = CountingStore(s3_store)

    def erase_once(key: str) -> None:
        if key == item.sidecar_key:
            with db.tx() as conn:
                Outbox.delete_for_owner(conn, "alice")

    counting.before_put = erase_once
    assert UploadWorker(counting, outbox, **FAST).run_once()
    assert keys_in(s3_store) == [] and ClipIndex(db).count() == 0 and outbox.get("c1") is None


def test_a_clip_dropped_after_a_half_done_upload_leaves_nothing_in_the_store(
    s3_store: ObjectStore, outbox: Outbox, tmp_path: Path
) -> None:
    """Found by the S3 fault suite (issue 14): the clip went up, its sidecar failed, then the spool quota dropped
    the clip (drop-oldest): the clip object stayed in the bucket, unindexed and without its sidecar, while the
    audit said dropped. The worker now removes such leftovers once the store answers again."""
    half = make_item(tmp_path / "spool", "half")
    outbox.enqueue(half)
    counting = CountingStore(s3_store)

    def fail_sidecar(key: str) -> None:
        if key == half.sidecar_key:
            raise StoreError("InternalError", "server answered HTTP 503", key=key)

    counting.before_put = fail_sidecar
    worker = UploadWorker(counting, outbox, **FAST)
    assert worker.run_once() and outbox.get("half").state == "pending"
    assert keys_in(s3_store) == [half.clip_key], "half done: the clip is up, its sidecar not"
    assert outbox.drop("half", "spool over quota (drop-oldest)") is not None
    counting.before_put = None
    after = make_item(tmp_path / "spool", "next")
    outbox.enqueue(after)
    assert worker.run_once() and outbox.get("next").state == "done"
    assert sorted(keys_in(s3_store)) == sorted([after.clip_key, after.sidecar_key])
    assert outbox.get("half").attempts == 0 and outbox.dropped_after_attempts() == []


def test_wake_ends_the_idle_wait(s3_store: ObjectStore, outbox: Outbox, tmp_path: Path) -> None:
    worker = UploadWorker(s3_store, outbox, idle_poll_s=30.0, **FAST)
    worker.start()
    try:
        time.sleep(0.2)
        outbox.enqueue(make_item(tmp_path / "spool", "c1"))
        worker.wake()
        assert wait_for(lambda: worker.uploaded == 1, timeout=5.0)
        assert worker.iterations <= 5
    finally:
        assert worker.stop(drain_timeout_s=5.0)


def test_store_down_queues_everything_and_delivers_once_it_returns(
    restartable_s3: MotoServer, outbox: Outbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="uploader.worker")
    store = CountingStore(restartable_s3.info.store(bucket="edge-media-outage"))
    restartable_s3.stop()
    items = [make_item(tmp_path / "spool", f"c{n}") for n in range(5)]
    worker = UploadWorker(store, outbox, rng=random.Random(7), **FAST)
    worker.start()
    try:
        for item in items:
            outbox.enqueue(item)
            worker.wake()
        time.sleep(2.0)
        rows = [outbox.get(i.clip_id) for i in items]
        assert all(r.state in ("pending", "inflight") for r in rows)  # nothing lost, nothing failed
        assert sum(r.attempts for r in rows) >= 1 and worker.uploaded == 0
        assert worker.last_error is not None and worker.last_error.code == "ConnectionError"
        # Each probe costs ~0.4 s of connection retries inside the client; a spinning loop would make hundreds.
        assert store.total() <= 12, store.calls
        assert worker.iterations <= 60, worker.iterations
        assert all(i.clip_path.exists() and i.sidecar_path.exists() for i in items)

        restartable_s3.start()  # empty again: the store re-creates its bucket
        assert wait_for(lambda: outbox.counts()["done"] == 5, timeout=15.0), outbox.counts()
    finally:
        assert worker.stop(drain_timeout_s=10.0)
    listed = keys_in(store.inner)
    assert len(listed) == len(set(listed)) == 10
    assert set(listed) == {k for i in items for k in (i.clip_key, i.sidecar_key)}
    assert not any(i.clip_path.exists() or i.sidecar_path.exists() for i in items)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("store unreachable" in m for m in messages) == 1
    assert sum("store reachable again" in m for m in messages) == 1
    assert worker.last_error is None


def test_a_missing_bucket_parks_the_item_and_pauses_the_worker(
    s3_server: S3Server, db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = f"edge-media-missing-{os.getpid()}"
    store = CountingStore(s3_server.store(bucket, create_bucket=False))
    outbox = Outbox(db)
    items = [make_item(tmp_path / "spool", f"c{n}") for n in range(3)]
    for item in items:
        outbox.enqueue(item)
    worker = UploadWorker(store, outbox, backoff_initial_s=0.05, backoff_cap_s=30.0)
    worker.start()
    try:
        time.sleep(2.0)
        assert worker.paused and worker.last_error is not None and worker.last_error.code == "NoSuchBucket"
        assert store.total() <= 2, store.calls  # one failing request, then quiet
        assert worker.iterations <= 5, worker.iterations
    finally:
        assert worker.stop(drain_timeout_s=5.0)
    assert [outbox.get(i.clip_id).state for i in items] == ["failed", "pending", "pending"]
    assert "NoSuchBucket" in outbox.get("c0").last_error
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "NoSuchBucket" in errors[0] and items[0].clip_key in errors[0]
    assert all(i.clip_path.exists() for i in items)  # nothing is lost while the configuration is wrong

    # Restart after the operator fixed the bucket: the parked item is retried and everything arrives.
    s3_server.client().make_bucket(bucket)
    try:
        restarted = Outbox(db)
        assert restarted.recover() == 1 and restarted.get("c0").state == "pending"
        worker = UploadWorker(store.inner, restarted, **FAST)
        while worker.run_once():
            pass
        assert restarted.counts()["done"] == 3 and len(keys_in(store.inner)) == 6
    finally:
        empty_bucket(s3_server, bucket)


def test_wrong_credentials_are_reported_without_secrets(
    outbox: Outbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}).start()  # moto checks keys: ours are unknown
    try:
        caplog.set_level(logging.DEBUG)
        outbox.enqueue(make_item(tmp_path / "spool", "c1"))
        worker = UploadWorker(server.info.store(), outbox, backoff_initial_s=0.05, backoff_cap_s=30.0)
        assert worker.run_once() and worker.paused
        row = outbox.get("c1")
        # The first request is the stat (a HEAD): a 403 without a body, so S3 can only say AccessDenied.
        assert row.state == "failed" and worker.last_error.code in ("AccessDenied", "InvalidAccessKeyId")
        assert worker.last_error.code in row.last_error and is_permanent(worker.last_error)
        for text in (caplog.text, row.last_error, str(worker.last_error)):
            assert MOTO_SECRET_KEY not in text and MOTO_ACCESS_KEY not in text
    finally:
        server.close()


def test_an_outage_is_one_line_when_it_starts_and_one_when_it_ends(
    restartable_s3: MotoServer, outbox: Outbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression (issue 9, defect 6): during an S3 outage urllib3 logged two "Retrying ..." warnings per
    attempt (its own connection retries inside every probe), although the README promises one line per
    outage. Now: one line when it starts, one when it ends, with the count of clips held."""
    caplog.set_level(logging.INFO)  # every logger, urllib3's included
    store = restartable_s3.info.store(bucket="edge-media-quiet-outage")
    restartable_s3.stop()
    items = [make_item(tmp_path / "spool", f"q{n}") for n in range(3)]
    for item in items:
        outbox.enqueue(item)
    worker = UploadWorker(store, outbox, rng=random.Random(3), **FAST)
    worker.start()
    try:
        assert wait_for(lambda: sum(outbox.get(i.clip_id).attempts for i in items) >= 5, timeout=15.0), \
            "the worker kept probing the store"
        assert worker.store_down and outbox.counts()["done"] == 0
        restartable_s3.start()
        assert wait_for(lambda: outbox.counts()["done"] == 3, timeout=15.0), outbox.counts()
    finally:
        assert worker.stop(drain_timeout_s=10.0)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in loud if r.name.startswith("urllib3")], "no urllib3 retry warnings"
    assert [r.getMessage() for r in loud] == [
        (f"store unreachable (ConnectionError: S3 endpoint {restartable_s3.info.endpoint} unreachable: "
         "NewConnectionError); holding 3 clips, retrying with backoff")]
    back = [r.getMessage() for r in caplog.records if "reachable again" in r.getMessage()]
    assert len(back) == 1 and re.fullmatch(
        r"store reachable again after \d+ s \(\d+ failed attempts\); uploading [0-2] held clips", back[0]), back
    assert not worker.store_down
