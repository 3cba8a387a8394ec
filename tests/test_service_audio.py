"""Audio events through the whole service: a camera's AAC track with a smoke alarm records a clip."""

from __future__ import annotations

import json

import pytest

from edge_media.config import parse_config
from edge_media.service.hub import Service

from audio_fixtures import alarm_scene, make_camera_clip

CONFIG = """
[service]
data_dir = "{data}"
[recording]
pre_roll_s = 2.0
post_roll_s = 2.0
[[cameras]]
name = "kitchen"
record_url = "{video}"
"""


@pytest.fixture(scope="module")
def alarm_camera(tmp_path_factory):
    samples, onset = alarm_scene(48000, alarm_s=8.0)
    path = make_camera_clip(tmp_path_factory.mktemp("audio") / "kitchen.mp4", samples, rate=48000, fps=10,
                            size=(320, 180))
    return path, onset


def test_smoke_alarm_on_camera_audio_records_a_clip_with_audio(tmp_path, alarm_camera):
    video, onset = alarm_camera
    svc = Service(parse_config(CONFIG.format(data=tmp_path / "data", video=video)))
    svc.run()
    svc.close()
    assert svc.audio_model is not None, "the shipped audio model loads and verifies"
    clips = list((tmp_path / "data" / "store" / "objects").rglob("*.json"))
    assert len(clips) == 1
    sidecar = json.loads(clips[0].read_text())
    labels = {e["label"] for e in sidecar["events"]}
    assert labels == {"smoke_co_alarm"}, "a static scene with an alarm: no motion, one audio event"
    [event] = sidecar["events"]
    assert abs(event["start"] - onset) <= 1.0, "triggers within 1 s of the alarm's onset"
    assert sidecar["audio_codec"] == "aac", "the clip keeps the camera's audio"
    assert sidecar["stream_start"] <= max(0.0, event["start"] - 2.0) + 0.01, "pre-roll honoured"
    assert sidecar["model_versions"]["audio_events"] == svc.audio_model.version


def test_audio_disabled_records_nothing_for_the_alarm(tmp_path, alarm_camera):
    video, _ = alarm_camera
    text = CONFIG.format(data=tmp_path / "data", video=video) + "audio_events = false\n"
    svc = Service(parse_config(text))
    svc.run()
    svc.close()
    assert not list((tmp_path / "data" / "store" / "objects").rglob("*.json"))
