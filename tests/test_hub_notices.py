"""The hub's notices: a real service on a real file publishes its camera's connection and its events on the bus,
and the live status follows them."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_service import make_config

from edge_media.service.bus import EventNotice, HubBus, SourceNotice, StorageNotice
from edge_media.service.hub import Service

from media import MovingBox, VideoSpec, make_video


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> Path:
    spec = VideoSpec(duration_s=9, fps=15, gop=30, noise_sigma=2.0, boxes=[MovingBox(3.0, 5.5, size=(60, 120))])
    return make_video(tmp_path_factory.mktemp("notices") / "walk.mp4", spec)


def test_a_file_camera_announces_its_connection_and_its_motion_event(tmp_path, walk):
    config = make_config(tmp_path, [{"name": "porch", "url": walk}])
    svc = Service(config)
    seen: list = []
    svc.bus.subscribe(seen.append)
    try:
        svc.run()
        live = svc.live.get("porch")
    finally:
        svc.close()
    states = [n.state for n in seen if isinstance(n, SourceNotice)]
    assert states[0] == "connected" and states[-1] == "ended"
    events = [n for n in seen if isinstance(n, EventNotice)]
    assert [(e.label, e.phase) for e in events] == [("motion", "start"), ("motion", "end")]
    start, end = events
    assert start.event_id == end.event_id and end.end is not None and end.end > end.start == start.start
    assert live is not None and live.state == "ended" and live.motion is not None
    assert live.motion.event_id == start.event_id and live.motion.end == end.end


def test_a_broken_subscriber_does_not_stop_the_others():
    bus, got = HubBus(), []

    def broken(_notice):
        raise RuntimeError("boom")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(got.append)
    notice = StorageNotice("quota_reached", active=True)
    bus.publish(notice)
    unsubscribe()
    bus.publish(notice)
    assert got == [notice]


def test_metrics_parse_and_a_camera_filter_keeps_only_that_camera(tmp_path, walk):
    from prometheus_client.parser import text_string_to_metric_families

    config = make_config(tmp_path, [{"name": "porch", "url": walk}, {"name": "yard", "url": walk}])
    svc = Service(config)
    try:
        svc.live.sample_frames("porch", 0, now=0.0)
        svc.live.sample_frames("porch", 150, now=10.0)
        svc.live.sample_frames("yard", 0, now=0.0)
        svc.live.sample_frames("yard", 50, now=10.0)
        every = {f.name: f for f in text_string_to_metric_families(svc.metrics.render().decode())}
        porch_only = {f.name: f for f in text_string_to_metric_families(svc.metrics.render(["porch"]).decode())}
    finally:
        svc.close()
    assert {s.labels["camera"]: s.value for s in every["edge_media_camera_fps"].samples} == {"porch": 15.0, "yard": 5.0}
    assert [s.labels["camera"] for s in porch_only["edge_media_camera_fps"].samples] == ["porch"]
    assert {s.labels["state"] for s in porch_only["edge_media_outbox_depth"].samples} >= {"pending", "done"}


def test_a_microphone_announces_its_state_and_its_audio_event_in_wall_time(tmp_path):
    """An unpaired microphone hears a smoke alarm: its connection and the event's start and end reach the bus, the
    event placed on the wall clock from the device's start (as its clip is)."""
    from edge_media.config import load_config

    from audio_fixtures import alarm_scene, encode_audio
    from clip_hub import FileMic

    samples, _ = alarm_scene(16000, silence_s=0.5, lead_noise_s=0.5, alarm_s=5.0, tail_s=2.0)
    sound = encode_audio(tmp_path / "hall.flac", samples, 16000)
    config = tmp_path / "hub.toml"
    config.write_text(f'[service]\ndata_dir = "{tmp_path / "data"}"\n[recording]\npre_roll_s = 1.0\n'
                      'post_roll_s = 1.0\n[[microphones]]\nname = "hall"\nowner = "alice"\n')
    svc = Service(load_config(config))
    mic = FileMic(sound)
    svc.mics = [svc._mic(svc.config.microphones[0], source=mic)]
    seen: list = []
    svc.bus.subscribe(seen.append)
    try:
        svc.run()
    finally:
        svc.close()
    assert [n.state for n in seen if isinstance(n, SourceNotice)] == ["connected", "ended"]
    events = [n for n in seen if isinstance(n, EventNotice)]
    assert [(e.source, e.label, e.phase) for e in events] == [("hall", "smoke_co_alarm", "start"),
                                                              ("hall", "smoke_co_alarm", "end")]
    start = events[0]
    onset, window = 1.0, 0.975  # the alarm begins 1 s into the file; an event starts at a window holding it
    assert mic.start_wall is not None and abs(start.start - (mic.start_wall + onset)) <= window
    assert events[1].end is not None and events[1].end > start.start
