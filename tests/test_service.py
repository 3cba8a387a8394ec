"""The service end to end: file camera → detection → pre-roll clip → spool → local store."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import timedelta
from pathlib import Path

import av
import pytest

from edge_media.config import parse_config
from edge_media.service.hub import Service
from uploader.retention import parse_utc

from media import MovingBox, VideoSpec, make_video, read_clip

FPS, GOP = 15, 30  # keyframe every 2 s
ONSET, LEAVE = 5.3, 7.5
PRE, POST = 2.0, 2.0

CONFIG = """
[service]
data_dir = "{data}"
[recording]
pre_roll_s = {pre}
post_roll_s = {post}
[storage]
plan = "plus"
[plans]
basic = 7
plus = 30
{cameras}
"""

CAMERA = """
[[cameras]]
name = "{name}"
record_url = "{url}"
{extra}
"""


def make_config(tmp_path: Path, cameras: list[dict]):
    cams = "".join(CAMERA.format(extra=c.pop("extra", ""), **c) for c in cameras)
    text = CONFIG.format(data=tmp_path / "data", pre=PRE, post=POST, cameras=cams)
    return parse_config(text, source="test.toml")


def run_to_end(config) -> Service:
    svc = Service(config)
    svc.run()
    return svc


@pytest.fixture(scope="module")
def walk_video(tmp_path_factory) -> Path:
    spec = VideoSpec(duration_s=12, fps=FPS, gop=GOP, audio=True, noise_sigma=2.0,
                     boxes=[MovingBox(ONSET, LEAVE, size=(60, 120))])
    return make_video(tmp_path_factory.mktemp("svc") / "walk.mp4", spec)


def stored_clips(svc: Service) -> list[tuple[str, dict, dict]]:
    out = []
    for info in svc.store.list_objects("clips/", with_tags=True):
        if info.key.endswith(".mp4"):
            sidecar = json.loads(svc.store.get_object(info.key[:-4] + ".json"))
            out.append((info.key, dict(info.tags or {}), sidecar))
    return out


def test_clip_has_pre_roll_from_keyframe_post_roll_and_exact_packets(tmp_path, walk_video):
    svc = run_to_end(make_config(tmp_path, [{"name": "porch", "url": walk_video}]))
    clips = stored_clips(svc)
    assert len(clips) == 1
    key, tags, sc = clips[0]

    # Pre-roll: the newest keyframe at or before onset - pre_roll (3.3 s) is the one at 2.0 s.
    assert sc["stream_start"] == pytest.approx(2.0, abs=1 / FPS)
    [event] = sc["events"]
    assert abs(event["start"] - ONSET) <= 0.3 and event["label"] == "motion"
    assert event["end"] >= LEAVE + POST - 0.3
    assert sc["stream_end"] >= event["end"] - 1 / FPS, "post-roll is in the clip"

    # The clip is a remux: every video packet is byte-identical to the source's, codec params kept.
    clip_path = tmp_path / "clip.mp4"
    clip_path.write_bytes(svc.store.get_object(key))
    clip = read_clip(clip_path)
    src = read_clip(walk_video)
    src_video = {round(t, 3): b for t, b in src["video"]}
    assert all(src_video[round(t + sc["stream_start"], 3)] == b for t, b in clip["video"])
    assert clip["codec"] == src["codec"] and clip["extradata"] == src["extradata"]
    assert (clip["width"], clip["height"]) == (src["width"], src["height"])
    assert clip["audio_codec"] == "aac" and clip["audio"], "the camera's audio is kept"
    assert clip["frames"] == len(clip["video"]), "every frame decodes"
    assert clip["frames"] == pytest.approx((sc["stream_end"] - sc["stream_start"]) * FPS, abs=2)

    # Sidecar matches the object; tags carry the plan deadline and no camera name.
    data = clip_path.read_bytes()
    assert sc["sha256"] == hashlib.sha256(data).hexdigest() and sc["size_bytes"] == len(data)
    assert sc["camera_hash"] == svc.ctx.camera_hash("porch")
    assert sc["model_versions"]["motion"] == svc.detector.model_version
    assert parse_utc(tags["retain-until"]) - parse_utc(sc["wall_end"]) == pytest.approx(
        timedelta(days=30), abs=timedelta(seconds=1))
    assert tags["plan"] == "plus" and tags["kind"] == "clip" and tags["event"] == "motion"
    assert "porch" not in key and tags["camera-hash"] in key
    assert not list((tmp_path / "data" / "spool" / "ready").iterdir()), "spool emptied after upload"


def test_two_cameras_share_one_detector_and_record_independently(tmp_path, walk_video):
    still = make_video(tmp_path / "still.mp4", VideoSpec(duration_s=8, noise_sigma=3.0))
    svc = run_to_end(make_config(tmp_path, [{"name": "porch", "url": walk_video},
                                             {"name": "hall", "url": still}]))
    clips = stored_clips(svc)
    assert [c[2]["camera_hash"] for c in clips] == [svc.ctx.camera_hash("porch")]
    assert svc.queues.motion.items >= 60 + 40 and svc.queues.motion.batches <= svc.queues.motion.items


def test_detect_substream_drives_recording_of_main_stream(tmp_path):
    spec = VideoSpec(duration_s=7, fps=FPS, gop=GOP, boxes=[MovingBox(3.5, 5.0)])
    main = make_video(tmp_path / "main.mp4", VideoSpec(**{**spec.__dict__, "width": 960, "height": 540}))
    sub = make_video(tmp_path / "sub.mp4", VideoSpec(**{**spec.__dict__, "width": 320, "height": 180}))
    svc = run_to_end(make_config(tmp_path, [{"name": "yard", "url": main,
                                              "extra": f'detect_url = "{sub}"\nrealtime = true'}]))
    clips = stored_clips(svc)
    assert len(clips) == 1
    sc = clips[0][2]
    assert (sc["width"], sc["height"]) == (960, 540), "the main stream is what is recorded"
    assert abs(sc["events"][0]["start"] - 3.5) <= 0.3
    assert sc["stream_start"] == pytest.approx(0.0, abs=0.1)  # keyframe <= 1.5 s


def test_stop_finishes_the_open_clip(tmp_path):
    busy = make_video(tmp_path / "busy.mp4", VideoSpec(duration_s=6, boxes=[MovingBox(1.0, 6.0, speed=0.1)]))
    config = make_config(tmp_path, [{"name": "door", "url": busy, "extra": "realtime = true\nloop = true"}])
    svc = Service(config)
    svc.start()
    started = threading.Event()
    threading.Thread(target=lambda: (svc.stop_event.wait(4.0), started.set()), daemon=True).start()
    started.wait(10)
    svc.stop()
    clips = stored_clips(svc)
    assert len(clips) == 1, "the clip open at shutdown was finished and stored"
    sc = clips[0][2]
    assert sc["duration_s"] > 2.0
    with av.open(str(tmp_path / "data" / "store" / "objects" / clips[0][0])) as c:
        assert sum(1 for _ in c.decode(video=0)) > 20


def test_unreadable_camera_is_reported_and_others_keep_working(tmp_path, walk_video, caplog):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01not a video" * 1000)
    caplog.set_level(logging.ERROR)
    svc = run_to_end(make_config(tmp_path, [{"name": "broken", "url": junk}, {"name": "porch", "url": walk_video}]))
    assert [c[2]["camera_hash"] for c in stored_clips(svc)] == [svc.ctx.camera_hash("porch")]
    errors = [r for r in caplog.records if "broken" in r.getMessage()]
    assert len(errors) == 1 and "cannot open" in errors[0].getMessage() and not errors[0].exc_info


def test_event_confirmed_at_end_of_file_does_not_touch_closed_streams(tmp_path):
    """Regression (segfault): motion confirmed by the last detections of a file queued a clip start
    that ran after the container was closed, copying codec parameters from freed streams."""
    spec = VideoSpec(duration_s=4, fps=FPS, gop=GOP, boxes=[MovingBox(3.4, 4.0)])
    video = make_video(tmp_path / "late.mp4", spec)
    for _ in range(5):
        svc = run_to_end(make_config(tmp_path, [{"name": "late", "url": video}]))
        svc.close()
    assert len(stored_clips(svc)) == 5
