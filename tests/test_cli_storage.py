"""`edge-media storage …` and `demo --s3` as an operator runs them (subprocesses, real stores)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile

import pytest

from edge_media.cli import main
from edge_media.config import load_config
from edge_media.service.hub import Service
from uploader import LocalStore
from uploader.db import Database
from uploader.index import ClipIndex, IndexedObject, insert
from uploader.retention import deadline_tags, format_utc, from_epoch

from media import MovingBox, VideoSpec, make_video

CLI = [sys.executable, "-m", "edge_media"]


def run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def hub(tmp_path):
    """A local-store hub after one recorded visit by alice's camera."""
    video = make_video(tmp_path / "v.mp4", VideoSpec(duration_s=6, boxes=[MovingBox(2.0, 3.0)]))
    cfg = tmp_path / "hub.toml"
    cfg.write_text(f'[service]\ndata_dir = "{tmp_path / "data"}"\n[recording]\npre_roll_s = 1.0\npost_roll_s = 1.0\n'
                   f'[[cameras]]\nname = "porch"\nowner = "alice"\nrecord_url = "{video}"\n')
    svc = Service(load_config(cfg))
    svc.run()
    svc.close()
    return cfg


def test_status_export_restrict_erase(hub, tmp_path):
    status = json.loads(run("storage", "status", "--config", str(hub), "--json").stdout)
    assert status["outbox"]["done"] == 1 and status["indexed_objects"] == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", status["next_deadline"])

    out = tmp_path / "alice.zip"
    res = run("storage", "export", "--config", str(hub), "--owner", "alice", "--out", str(out))
    assert res.returncode == 0, res.stderr
    names = zipfile.ZipFile(out).namelist()
    extra = {"manifest.json", "consent.json", "flags.json", "feedback-disclosures.json"}
    assert len(names) == 6 and extra <= set(names)

    assert run("storage", "restrict", "--config", str(hub), "--camera", "porch").returncode == 0
    status = json.loads(run("storage", "status", "--config", str(hub), "--json").stdout)
    assert status["restricted_cameras"] == ["porch"]

    refused = run("storage", "erase", "--config", str(hub), "--owner", "alice")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    res = run("storage", "erase", "--config", str(hub), "--owner", "alice", "--yes")
    assert res.returncode == 0 and "erased 2 stored objects" in res.stdout
    status = json.loads(run("storage", "status", "--config", str(hub), "--json").stdout)
    assert status["indexed_objects"] == 0 and status["restricted_cameras"] == ["porch"], "restriction outlives"
    assert not list((tmp_path / "data" / "store" / "objects").rglob("*.mp4"))


def test_apply_lifecycle_on_s3_and_clear_error_on_local(hub, tmp_path, s3_server):
    res = run("storage", "apply-lifecycle", "--config", str(hub))
    assert res.returncode == 1 and "storage error" in res.stderr and "Traceback" not in res.stderr
    cfg = tmp_path / "s3.toml"
    cfg.write_text(f'[service]\ndata_dir = "{tmp_path / "d2"}"\n[storage]\nbackend = "s3"\n[plans]\nbasic = 7\n'
                   f'plus = 30\n[storage.s3]\nendpoint = "{s3_server.endpoint}"\nbucket = "lifecycle-cli"\n'
                   f'secure = {str(s3_server.secure).lower()}\n')
    env = {"EDGE_MEDIA_S3_ACCESS_KEY": s3_server.access_key, "EDGE_MEDIA_S3_SECRET_KEY": s3_server.secret_key}
    res = run("storage", "apply-lifecycle", "--config", str(cfg), env=env)
    assert res.returncode == 0, res.stderr
    assert "retention-plan-basic: expire after 8 days" in res.stdout
    assert "retention-plan-plus: expire after 31 days" in res.stdout
    assert s3_server.secret_key not in res.stdout + res.stderr


def test_demo_s3(tmp_path):
    res = run("demo", "--s3", "--dir", str(tmp_path), timeout=300)
    assert res.returncode == 0, res.stderr
    assert "s3://edge-media-demo" in res.stdout and "clips stored : 1" in res.stdout


ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def test_status_prints_aligned_text_with_iso_times_and_json_on_request(hub, capsys):
    """Bug: `storage status` printed JSON only, with the next deadline as an epoch float (1796119200.42)."""
    assert main(["storage", "restrict", "--config", str(hub), "--camera", "porch"]) == 0
    capsys.readouterr()
    assert main(["storage", "status", "--config", str(hub)]) == 0
    text = capsys.readouterr().out
    assert re.search(rf"^next deadline +{ISO}$", text, re.MULTILINE)
    assert re.search(r"^stored objects +2$", text, re.MULTILINE)
    assert re.search(r"^CAMERA +KIND +OWNER +STATE$", text, re.MULTILINE)
    assert re.search(r"^porch +camera +alice +restricted$", text, re.MULTILINE)
    assert not re.search(r"\d{10}\.\d", text)  # no epoch floats anywhere
    assert main(["storage", "status", "--config", str(hub), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert re.fullmatch(ISO, status["next_deadline"])
    assert status["sources"] == [{"camera": "porch", "kind": "camera", "owner": "alice", "state": "restricted"}]


def test_failed_export_leaves_no_file(hub, tmp_path, capsys):
    """Bug: export opened --out before reading the store, so a failure half-way (here a stored clip whose bytes
    no longer match their sha256) left a truncated archive that looked like a finished export."""
    (clip,) = (tmp_path / "data" / "store" / "objects").rglob("*.mp4")
    clip.write_bytes(b"bit rot" * 100)
    out = tmp_path / "exports" / "alice.zip"
    out.parent.mkdir()
    assert main(["storage", "export", "--config", str(hub), "--owner", "alice", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("storage error: BadDigest")
    assert list(out.parent.iterdir()) == []  # neither alice.zip nor a temp file


def _object(key: str, *, ended_days_ago: float, days: int = 7) -> IndexedObject:
    end = time.time() - ended_days_ago * 86_400
    return IndexedObject(key=key, clip_id=key.rsplit("/", 1)[1], owner="alice", camera_hash="cam", kind="clip",
                         plan="basic", wall_end=format_utc(from_epoch(end)), retain_until=end + days * 86_400,
                         size=4, sha256=None, local_path=None, uploaded=end)


def test_sweep_with_reconcile_also_sweeps(tmp_path, capsys):
    """Bug: `storage sweep --reconcile` ran reconcile() *instead of* sweep(), although its help says "also":
    an expired indexed clip survived it. Now an expired indexed clip and an expired unindexed object both go."""
    cfg = tmp_path / "hub.toml"
    cfg.write_text(f'[service]\ndata_dir = "{tmp_path / "data"}"\n')
    store, db = LocalStore(tmp_path / "data" / "store"), Database(tmp_path / "data" / "edge-media.db")
    indexed_old, fresh = _object("clips/cam/a.mp4", ended_days_ago=10), _object("clips/cam/b.mp4", ended_days_ago=1)
    lost_old = _object("clips/cam/c.mp4", ended_days_ago=9)  # uploaded, but its index row was lost
    for obj in (indexed_old, fresh, lost_old):
        store.put_bytes(obj.key, b"clip", tags=deadline_tags({}, obj.wall_end, "basic", 7))
    with db.tx() as conn:
        insert(conn, [indexed_old, fresh])
    db.close()

    assert main(["storage", "sweep", "--config", str(cfg), "--reconcile"]) == 0
    out = capsys.readouterr().out
    assert "sweep: deleted 1 expired indexed objects" in out
    assert "reconcile: deleted 1 expired unindexed objects" in out
    assert {o.key for o in store.list_objects("")} == {fresh.key}
    db = Database(tmp_path / "data" / "edge-media.db")
    assert [o.key for o in ClipIndex(db).for_owner("alice")] == [fresh.key]
    db.close()
