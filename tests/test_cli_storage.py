"""`edge-media storage …` and `demo --s3` as an operator runs them (subprocesses, real stores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from edge_media.config import load_config
from edge_media.service.hub import Service

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
    status = json.loads(run("storage", "status", "--config", str(hub)).stdout)
    assert status["outbox"]["done"] == 1 and status["indexed_objects"] == 2

    out = tmp_path / "alice.zip"
    res = run("storage", "export", "--config", str(hub), "--owner", "alice", "--out", str(out))
    assert res.returncode == 0, res.stderr
    names = zipfile.ZipFile(out).namelist()
    assert len(names) == 3 and "manifest.json" in names

    assert run("storage", "restrict", "--config", str(hub), "--camera", "porch").returncode == 0
    status = json.loads(run("storage", "status", "--config", str(hub)).stdout)
    assert status["restricted_cameras"] == ["porch"]

    refused = run("storage", "erase", "--config", str(hub), "--owner", "alice")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    res = run("storage", "erase", "--config", str(hub), "--owner", "alice", "--yes")
    assert res.returncode == 0 and "erased 2 stored objects" in res.stdout
    status = json.loads(run("storage", "status", "--config", str(hub)).stdout)
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
