"""`edge-media run` start-up and exit, and camera readers that never die silently (issue 9, defects 4, 9, 10).

Real services on real encoded files (and a real moto S3 server); CLI cases run the console script in a
subprocess for its exit code and stderr."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import av
import pytest

from edge_media.config import parse_config
from edge_media.service.hub import NothingToRun, Service
from uploader import LocalStore, ObjectInfo, StoreError
from uploader.s3_store import CONNECTION_ERROR

from media import MovingBox, VideoSpec, make_video, raw_h264, tiny_video

CLI = [sys.executable, "-m", "edge_media"]


def config_text(data: Path, cameras: dict[str, str], extra: str = "", storage: str = "") -> str:
    cams = "".join(f'[[cameras]]\nname = "{n}"\nrecord_url = "{u}"\n{extra}' for n, u in cameras.items())
    return (f'[service]\ndata_dir = "{data}"\n[recording]\npre_roll_s = 1.0\npost_roll_s = 1.0\n'
            f"{storage}{cams}")


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("startup") / "walk.mp4",
                      VideoSpec(duration_s=6, boxes=[MovingBox(2.0, 4.0)]))


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    junk, empty = tmp_path / "junk.mp4", tmp_path / "empty.mp4"
    junk.write_bytes(b"\x00\x01not a video" * 1000)
    empty.write_bytes(b"")
    return {"garden": tmp_path / "missing.mp4", "porch": junk, "hall": empty,
            "attic": tiny_video(tmp_path / "tiny.mp4", 1, 1)}


def stored_clips(data: Path) -> list[Path]:
    return sorted((data / "store" / "objects").rglob("*.mp4"))


def test_run_exits_1_and_names_every_camera_that_cannot_be_opened(tmp_path, bad_files):
    """Regression (issue 9, defect 4): `run` said "running: 4 cameras" and exited 0 although no camera
    could be opened (missing, garbage, empty and 1x1 files)."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(tmp_path / "data", {n: str(p) for n, p in bad_files.items()}))
    res = subprocess.run([*CLI, "run", "--config", str(cfg)], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and "running:" not in res.stderr
    lines = res.stderr.splitlines()
    expected = {
        "garden": f"camera garden: cannot open {bad_files['garden']}: No such file or directory",
        "porch": f"camera porch: cannot open {bad_files['porch']}: Invalid data found when processing input",
        "hall": f"camera hall: cannot open {bad_files['hall']}: the file is empty",
        "attic": (f"camera attic: {bad_files['attic']} has 1x1 frames, too small to detect motion in "
                  "(detect frames need at least 16x16 pixels)"),
    }
    for name, line in expected.items():
        assert sum(line in ln for ln in lines) == 1, (name, res.stderr)
    assert lines[-1] == "no camera or microphone could be opened (cameras failed: garden, porch, hall, attic)"
    assert not stored_clips(tmp_path / "data")


def test_one_good_and_one_bad_camera_runs_records_the_good_and_names_the_bad(tmp_path, walk, bad_files, caplog):
    """Regression (issue 9, defect 4): the start-up line counted configured cameras, not opened ones."""
    caplog.set_level(logging.INFO)
    config = parse_config(config_text(tmp_path / "data", {"garden": str(bad_files["garden"]), "door": str(walk)}),
                          source="test.toml")
    svc = Service(config)
    svc.run()
    svc.close()
    running = [r.getMessage() for r in caplog.records if "edge-media running" in r.getMessage()]
    assert running == ["edge-media running: 1 of 2 cameras, store LocalStore; failed: garden"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    missing = bad_files["garden"]
    assert [r.getMessage() for r in errors] == [f"camera garden: cannot open {missing}: No such file or directory"]
    [clip] = stored_clips(tmp_path / "data")
    assert svc.ctx.camera_hash("door") in clip.parts, "the good camera was recorded"


def test_a_live_camera_down_at_start_is_retrying_not_failed(tmp_path, caplog):
    """Regression (issue 9, defect 4): a live camera that is merely down at start-up keeps reconnecting:
    the service runs and says the camera is retrying."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    caplog.set_level(logging.INFO)
    url = f"http://127.0.0.1:{port}/cam.ts"
    svc = Service(parse_config(config_text(tmp_path / "data", {"gate": url}), source="test.toml"))
    svc.start()
    try:
        assert svc.workers[0].alive, "the reader keeps trying"
        msgs = [r.getMessage() for r in caplog.records]
        assert "edge-media running: 0 of 1 cameras, store LocalStore; retrying: gate" in msgs
        assert sum(m.startswith(f"camera gate: cannot open {url}: ") and m.endswith("; reconnecting with backoff")
                   for m in msgs) == 1
    finally:
        svc.stop()
        svc.close()


def test_run_on_files_with_s3_uploads_the_clip_before_exiting(tmp_path, walk, s3_server):
    """Issue 9, defect 4: when every file camera has ended, `run` drains the outbox before it exits."""
    bucket = f"startup-{os.getpid()}-{int(time.time())}"
    storage = (f'[storage]\nbackend = "s3"\n[storage.s3]\nendpoint = "{s3_server.endpoint}"\n'
               f'bucket = "{bucket}"\nsecure = {str(s3_server.secure).lower()}\n')
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(tmp_path / "data", {"door": str(walk)}, storage=storage))
    env = dict(os.environ, EDGE_MEDIA_S3_ACCESS_KEY=s3_server.access_key,
               EDGE_MEDIA_S3_SECRET_KEY=s3_server.secret_key)
    res = subprocess.run([*CLI, "run", "--config", str(cfg)], capture_output=True, text=True, timeout=120, env=env,
                         check=False)
    assert res.returncode == 0, res.stderr
    client = s3_server.client()
    try:
        keys = sorted(o.object_name for o in client.list_objects(bucket, recursive=True))
        assert len(keys) == 2 and keys[0].endswith(".json") and keys[1].endswith(".mp4"), keys
        assert not list((tmp_path / "data" / "spool" / "ready").iterdir()), "nothing left queued"
    finally:
        from s3_fixtures import empty_bucket

        empty_bucket(s3_server, bucket)


def test_an_unexpected_error_in_handling_reopens_the_camera(tmp_path, walk, caplog):
    """Regression (issue 9, defect 10): any exception that was not an FFmpeg error ended a camera's reader
    for good. Now it is logged (traceback once), the open clip is finished and the source reopened."""
    caplog.set_level(logging.INFO)
    config = parse_config(config_text(tmp_path / "data", {"door": str(walk)}, extra="loop = true\n"),
                          source="test.toml")
    svc = Service(config)
    pipe, worker = svc.workers[0].pipeline, svc.workers[0]
    real_handle, calls = pipe.handle, []

    def handle(ev):  # a bug in the pipeline on the 30th event of the first session only
        calls.append(ev)
        if len(calls) == 30:
            raise RuntimeError("injected bug")
        return real_handle(ev)

    pipe.handle = handle
    svc.start()
    try:
        deadline = time.monotonic() + 30
        while worker.sources[0].stats.sessions < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.sources[0].stats.sessions >= 3 and worker.alive, "reopened and kept reading"
    finally:
        svc.stop()
        svc.close()
    assert worker.crashes == 1
    crash = [r for r in caplog.records if "unexpected error while handling" in r.getMessage()]
    assert len(crash) == 1 and crash[0].exc_info is not None
    assert crash[0].getMessage() == f"camera door: unexpected error while handling {walk}; reopening it with backoff"


def test_a_raw_h264_camera_is_recorded(tmp_path, walk):
    """Regression (issue 9, defect 9): packets without timestamps were dropped silently, so a raw .h264
    camera was never recorded. Now they are timed from the stream's frame rate and remuxed."""
    raw = raw_h264(walk, tmp_path / "walk.h264")
    svc = Service(parse_config(config_text(tmp_path / "data", {"raw": str(raw)}), source="test.toml"))
    svc.run()
    svc.close()
    [clip] = stored_clips(tmp_path / "data")
    sidecar = json.loads(clip.with_suffix(".json").read_text())
    assert abs(sidecar["events"][0]["start"] - 2.0) <= 0.3
    with av.open(str(clip)) as c:
        frames = [f.time for f in c.decode(video=0)]
    assert len(frames) == pytest.approx(sidecar["duration_s"] * 15, abs=2)
    assert all(b > a for a, b in pairwise(frames)), "the clip plays in order"


def test_nothing_to_run_is_raised_by_the_service(tmp_path, bad_files):
    svc = Service(parse_config(config_text(tmp_path / "data", {"porch": str(bad_files["porch"])}),
                               source="test.toml"))
    with pytest.raises(NothingToRun, match=r"^no camera or microphone could be opened \(cameras failed: porch\)$"):
        svc.run()
    svc.close()


class BlipStore(LocalStore):
    """A local store whose first PUT fails like a dropped connection (a network blip), then works."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.blips = 1

    def put_object(self, key: str, path: Path, **options: object) -> ObjectInfo:
        if self.blips:
            self.blips -= 1
            raise StoreError(CONNECTION_ERROR, "connection reset by peer", key=key)
        return super().put_object(key, path, **options)  # type: ignore[arg-type]


def test_run_on_files_waits_out_a_one_attempt_blip_before_exiting(tmp_path, walk):
    """Regression (issue 9, defect 4): the exit drain gave up as soon as the upload worker backed off
    once, so a single failed PUT at the end of a file run left the clip queued until the next start."""
    config = parse_config(config_text(tmp_path / "data", {"door": str(walk)}), source="test.toml")
    store = BlipStore(tmp_path / "data" / "store")
    svc = Service(config, store=store)
    svc.run()
    counts = svc.outbox.counts()
    svc.close()
    assert store.blips == 0, "the first PUT did fail"
    assert counts["done"] == 1 and counts["pending"] == 0, counts
    assert len(stored_clips(tmp_path / "data")) == 1
