"""The service against a real S3 server (moto over HTTP): outages, retention, owner rights."""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from edge_media.config import parse_config
from edge_media.privacy import OwnerRights
from edge_media.service.context import HubContext
from edge_media.service.hub import Service
from uploader.sweeper import RetentionSweeper

from media import MovingBox, VideoSpec, make_video

CONFIG = """
[service]
data_dir = "{data}"
[recording]
pre_roll_s = 1.0
post_roll_s = 1.0
[storage]
plan = "basic"
[plans]
basic = 7
plus = 30
[owners.alice]
plan = "plus"
[owners.bob]
plan = "basic"
{cameras}
"""


def config_for(tmp_path: Path, cameras: dict[str, tuple[str, Path]]):
    cams = "".join(f'[[cameras]]\nname = "{n}"\nowner = "{o}"\nrecord_url = "{u}"\n' for n, (o, u) in cameras.items())
    return parse_config(CONFIG.format(data=tmp_path / "data", cameras=cams), source="test.toml")


@pytest.fixture(scope="module")
def two_visits(tmp_path_factory) -> Path:
    spec = VideoSpec(duration_s=10, boxes=[MovingBox(2.0, 3.0), MovingBox(6.5, 7.5)])
    return make_video(tmp_path_factory.mktemp("s3svc") / "visits.mp4", spec)


def bucket_keys(store) -> list[str]:
    return [o.key for o in store.list_objects("")]


def run_until_uploaded(svc: Service, n: int, timeout: float = 30.0) -> None:
    svc.start()
    deadline = time.monotonic() + timeout
    while svc.outbox.counts()["done"] < n and time.monotonic() < deadline:
        time.sleep(0.1)
    svc.wait()
    svc.stop()


def test_s3_down_while_recording_then_everything_arrives_once(tmp_path, two_visits, restartable_s3):
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    config = config_for(tmp_path, {"porch": ("alice", two_visits)})
    restartable_s3.stop()  # the store is unreachable for the whole first run
    svc = Service(config, store=restartable_s3.info.store(bucket=bucket))
    svc.run()
    counts = svc.outbox.counts()
    assert counts["pending"] == 2 and counts["done"] == 0, counts
    assert len(list(svc.spool.ready_dir.glob("*.mp4"))) == 2, "queued on disk, nothing lost"

    restartable_s3.start()
    empty = make_video(tmp_path / "empty.mp4", VideoSpec(duration_s=1))
    svc2 = Service(config_for(tmp_path, {"porch": ("alice", empty)}), store=restartable_s3.info.store(bucket=bucket))
    run_until_uploaded(svc2, 2)
    keys = bucket_keys(svc2.store)
    assert len(keys) == 4 and len(set(keys)) == 4, "two clips + two sidecars, no duplicates"
    assert not list(svc2.spool.ready_dir.glob("*.mp4")), "spool emptied after upload"
    tags = svc2.store.get_tags(next(k for k in keys if k.endswith(".mp4")))
    assert tags["plan"] == "plus" and tags["kind"] == "clip" and tags["camera-hash"] in keys[0]


def test_retention_sweep_deletes_expired_clips_from_s3_and_index(tmp_path, two_visits, s3_store):
    svc = Service(config_for(tmp_path, {"porch": ("bob", two_visits)}), store=s3_store)
    run_until_uploaded(svc, 2)
    assert len(bucket_keys(s3_store)) == 4
    ctx = HubContext.open(svc.config, store=s3_store)
    try:
        RetentionSweeper(s3_store, ctx.db, clock=lambda: time.time() + 6 * 86400).sweep()
        assert len(bucket_keys(s3_store)) == 4, "basic plan keeps 7 days"
        report = RetentionSweeper(s3_store, ctx.db, clock=lambda: time.time() + 7 * 86400 + 120).sweep()
        assert report.deleted == 4 and bucket_keys(s3_store) == []
        audit = ctx.db.query("SELECT action, key, deadline FROM audit WHERE action = 'delete'")
        assert len(audit) == 4 and all(r["deadline"] for r in audit)
    finally:
        ctx.close()


def test_restricted_camera_records_nothing_new_and_keeps_its_clips(tmp_path, two_visits, s3_store):
    config = config_for(tmp_path, {"porch": ("alice", two_visits), "yard": ("alice", two_visits)})
    ctx = HubContext.open(config, store=s3_store)
    OwnerRights(s3_store, ctx.spool, ctx.db).restrict(ctx.scope("alice"), "yard")
    yard = ctx.camera_hash("yard")
    ctx.close()
    svc = Service(config, store=s3_store)
    run_until_uploaded(svc, 2)
    keys = bucket_keys(s3_store)
    assert len(keys) == 4 and not any(yard in k for k in keys)
    stats = {w.cam.name: w.sources[0].stats for w in svc.workers}
    assert stats["yard"].frames_decoded == 0 and stats["porch"].frames_decoded > 0, "restricted: not even decoded"


def test_export_contains_exactly_the_owners_clips_and_erasure_leaves_nothing(tmp_path, two_visits, s3_store):
    config = config_for(tmp_path, {"porch": ("alice", two_visits), "gate": ("bob", two_visits)})
    svc = Service(config, store=s3_store)
    run_until_uploaded(svc, 4)
    ctx = HubContext.open(config, store=s3_store)
    rights = OwnerRights(s3_store, ctx.spool, ctx.db)
    alice, bob = ctx.scope("alice"), ctx.scope("bob")
    try:
        buf = io.BytesIO()
        report = rights.export(alice, buf, fmt="zip")
        names = zipfile.ZipFile(io.BytesIO(buf.getvalue())).namelist()
        extra = ("manifest.json", "consent.json", "flags.json", "feedback-disclosures.json")
        assert report.objects == 4 and len(names) == 8 and set(extra) <= set(names)
        assert all(alice.cameras["porch"] in n for n in names if n not in extra)
        manifest = json.loads(zipfile.ZipFile(io.BytesIO(buf.getvalue())).read("manifest.json"))
        assert {f["camera"] for f in manifest["files"]} == {"porch"}
        tar_buf = io.BytesIO()
        rights.export(alice, tar_buf, fmt="tar")
        assert len(tarfile.open(fileobj=io.BytesIO(tar_buf.getvalue())).getnames()) == len(names)

        from uploader.outbox import Outbox

        rights.erase(alice, outbox=Outbox(ctx.db))
        keys = bucket_keys(s3_store)
        assert len(keys) == 4 and all(bob.cameras["gate"] in k for k in keys), "only bob's clips remain"
        db = sqlite3.connect(ctx.db.path)
        dump = "\n".join(db.iterdump())
        assert "alice" not in dump and alice.cameras["porch"] not in dump, "nothing of alice in SQLite"
        assert not any("porch" in p.read_text() for p in ctx.spool.ready_dir.glob("*.json"))
    finally:
        ctx.close()
