"""The hub's metrics against what really happened: a real service on generated video, its `/metrics` text
parsed with prometheus-client's own parser, and every figure checked against the store, the sidecars, the
file and the upload worker's real outcomes (a stopped S3 server, one that refuses our keys)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_service import make_config, stored_clips

from edge_media.service.hub import Service
from uploader.sweeper import RetentionSweeper

from media import MovingBox, VideoSpec, make_video
from s3_fixtures import MotoServer

FPS = 15


def scrape(svc: Service, cameras: list[str] | None = None) -> dict[str, dict[tuple, float]]:
    """family name -> {(sample name, sorted label items): value}."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(svc.metrics.render(cameras).decode()):
        out[family.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    return out


def value(metrics: dict, family: str, sample: str | None = None, **labels: str) -> float:
    return metrics[family][(sample or family, tuple(sorted(labels.items())))]


@pytest.fixture(scope="module")
def visits(tmp_path_factory) -> Path:
    spec = VideoSpec(duration_s=12, fps=FPS, gop=30, noise_sigma=2.0,
                     boxes=[MovingBox(2.0, 3.5, size=(60, 120)), MovingBox(8.0, 9.5, size=(60, 120))])
    return make_video(tmp_path_factory.mktemp("metrics") / "visits.mp4", spec)


@pytest.fixture(scope="module")
def short_walk(tmp_path_factory) -> Path:
    spec = VideoSpec(duration_s=4, fps=FPS, gop=30, noise_sigma=2.0, boxes=[MovingBox(1.0, 2.0, size=(60, 120))])
    return make_video(tmp_path_factory.mktemp("metrics") / "walk.mp4", spec)


def test_counts_match_the_store_the_sidecars_and_the_file(tmp_path, visits):
    svc = Service(make_config(tmp_path, [{"name": "porch", "url": visits}, {"name": "yard", "url": visits}]))
    # The service's own sweeper runs on the wall clock; this one sees the day after the plan's 30 days.
    svc.sweeper = RetentionSweeper(svc.store, svc.ctx.db, clock=lambda: time.time() + 31 * 86400)
    try:
        svc.run()
        clips = stored_clips(svc)
        m = scrape(svc)
        report = svc.sweeper.sweep()
        after = scrape(svc)
    finally:
        svc.close()
    by_camera = {"porch": 0, "yard": 0}
    events = {"porch": 0, "yard": 0}
    for _key, _tags, sidecar in clips:
        cam = next(c for c in by_camera if svc.ctx.camera_hash(c) == sidecar["camera_hash"])
        by_camera[cam] += 1
        events[cam] += sum(1 for e in sidecar["events"] if not e.get("continued"))
    assert by_camera == {"porch": 2, "yard": 2}, "two visits per camera, one clip each"
    for cam in by_camera:
        assert value(m, "edge_media_clips_recorded", "edge_media_clips_recorded_total", camera=cam) == by_camera[cam]
        assert value(m, "edge_media_events", "edge_media_events_total", camera=cam, label="motion") == events[cam]
        # Every frame of the 12 s file is decoded once (one stream: decoded for detection, remuxed for clips).
        frames = value(m, "edge_media_camera_frames_decoded", "edge_media_camera_frames_decoded_total", camera=cam)
        assert frames == 12 * FPS
        assert value(m, "edge_media_camera_decode_seconds", "edge_media_camera_decode_seconds_total", camera=cam) > 0
        assert value(m, "edge_media_camera_detect_seconds", "edge_media_camera_detect_seconds_total", camera=cam) > 0
        assert value(m, "edge_media_source_connected", camera=cam) == 0, "the file ended"
        assert value(m, "edge_media_camera_connect_failures", "edge_media_camera_connect_failures_total",
                     camera=cam) == 0
    assert value(m, "edge_media_clips_uploaded", "edge_media_clips_uploaded_total") == len(clips) == 4
    assert value(m, "edge_media_store_up") == 1
    assert value(m, "edge_media_outbox_depth", state="done") == 4
    assert value(m, "edge_media_outbox_depth", state="pending") == 0
    assert value(m, "edge_media_upload_failures", "edge_media_upload_failures_total", kind="retryable") == 0
    # One histogram observation per motion batch: as many as the batcher ran, their sum the time they took.
    batches = value(m, "edge_media_model_inference_seconds", "edge_media_model_inference_seconds_count",
                    model="motion")
    assert batches == svc.queues.motion.batches > 0
    assert 0 < value(m, "edge_media_model_inference_seconds", "edge_media_model_inference_seconds_sum",
                     model="motion") < 60
    assert value(m, "edge_media_retention_deletions", "edge_media_retention_deletions_total", path="sweep") == 0
    assert report.deleted == 8  # four clips and their sidecars, all past the plan's deadline
    assert value(after, "edge_media_retention_deletions", "edge_media_retention_deletions_total", path="sweep") == 8


def test_a_viewer_scrape_has_only_their_cameras(tmp_path, short_walk):
    svc = Service(make_config(tmp_path, [{"name": "porch", "url": short_walk}, {"name": "yard", "url": short_walk}]))
    try:
        svc.run()
        m = scrape(svc, ["porch"])
    finally:
        svc.close()
    cameras = {dict(labels).get("camera") for family in m.values() for (_name, labels) in family}
    assert cameras == {None, "porch"}, "hub-wide samples and porch's, nothing of yard"
    assert value(m, "edge_media_events", "edge_media_events_total", camera="porch", label="motion") == 1


def test_fps_follows_a_realtime_camera(tmp_path, short_walk):
    config = make_config(tmp_path, [{"name": "porch", "url": short_walk, "extra": "realtime = true\nloop = true"}])
    svc = Service(config)
    runner = threading.Thread(target=svc.run)
    started = time.monotonic()
    runner.start()
    fps = None
    try:
        # The control loop samples frame counts every 2 s; after ~8 s its window holds several samples.
        while fps is None and time.monotonic() - started < 30:
            time.sleep(0.5)
            samples = scrape(svc).get("edge_media_camera_fps", {})
            if samples and time.monotonic() - started > 8:
                fps = value(scrape(svc), "edge_media_camera_fps", camera="porch")
        frames = value(scrape(svc), "edge_media_camera_frames_decoded", "edge_media_camera_frames_decoded_total",
                       camera="porch")
        connected = value(scrape(svc), "edge_media_source_connected", camera="porch")
    finally:
        svc.stop_event.set()
        runner.join(60)
        svc.close()
    assert fps is not None, "no fps sample within 30 s"
    # Paced at real time: decoded frames per wall second ≈ the file's rate (generous: the CI box is shared).
    assert 0.6 * FPS <= fps <= 1.4 * FPS, fps
    assert frames > 4 * FPS, "looped past the file's end"
    assert connected == 1


def test_upload_failures_are_counted_by_kind(tmp_path, short_walk, restartable_s3):
    restartable_s3.stop()  # unreachable: every attempt is a retryable failure
    svc = Service(make_config(tmp_path / "down", [{"name": "porch", "url": short_walk}]),
                  store=restartable_s3.info.store(bucket="metrics-down"))
    try:
        svc.run()
        down = scrape(svc)
        attempts = svc.outbox.counts()
    finally:
        svc.close()
    assert attempts["pending"] == 1
    assert value(down, "edge_media_upload_failures", "edge_media_upload_failures_total", kind="retryable") >= 1
    assert value(down, "edge_media_upload_failures", "edge_media_upload_failures_total", kind="permanent") == 0
    assert value(down, "edge_media_clips_uploaded", "edge_media_clips_uploaded_total") == 0
    assert value(down, "edge_media_outbox_depth", state="pending") == 1
    assert value(down, "edge_media_spool_bytes") > 0, "the clip waits in the spool"
    assert value(down, "edge_media_store_up") == 0

    refusing = MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}).start()  # checks keys: ours are unknown
    try:
        svc = Service(make_config(tmp_path / "refused", [{"name": "porch", "url": short_walk}]),
                      store=refusing.info.store())
        try:
            svc.run()
            refused = scrape(svc)
        finally:
            svc.close()
    finally:
        refusing.close()
    assert value(refused, "edge_media_upload_failures", "edge_media_upload_failures_total", kind="permanent") == 1
    assert value(refused, "edge_media_upload_failures", "edge_media_upload_failures_total", kind="retryable") == 0
    assert value(refused, "edge_media_outbox_depth", state="failed") == 1


def test_a_camera_that_cannot_connect_shows_down_with_its_failed_attempts(tmp_path, short_walk):
    from edge_media.tools.devserver import free_port

    closed = f"rtsp://127.0.0.1:{free_port()}/stream"  # nobody listens: every attempt is refused at once
    svc = Service(make_config(tmp_path, [{"name": "gate", "url": closed}, {"name": "porch", "url": short_walk}]))
    svc.start()
    try:
        assert wait_attempts(svc, "gate", 2), "retried with backoff"
        m = scrape(svc)
    finally:
        svc.stop()
        svc.close()
    assert value(m, "edge_media_source_connected", camera="gate") == 0
    assert value(m, "edge_media_camera_connect_failures", "edge_media_camera_connect_failures_total",
                 camera="gate") >= 2
    assert value(m, "edge_media_camera_frames_decoded", "edge_media_camera_frames_decoded_total", camera="gate") == 0


def wait_attempts(svc: Service, camera: str, n: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker = next(w for w in svc.workers if w.cam.name == camera)
        if sum(s.stats.failures for s in worker.sources) >= n:
            return True
        time.sleep(0.1)
    return False
