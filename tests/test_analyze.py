"""Detection over real encoded video, end to end through the source, the ONNX model and the tracker."""

from __future__ import annotations

import pytest

from edge_media.detect import MotionDetector
from edge_media.events import TrackerSettings
from edge_media.tools.analyze import AnalyzeOptions, analyze_file

from media import MovingBox, VideoSpec, make_video


@pytest.fixture(scope="module")
def detector() -> MotionDetector:
    return MotionDetector(threads=1)


def analyze(path, detector, **tracker):
    opts = AnalyzeOptions(tracker=TrackerSettings(**{"post_roll_s": 2.0, **tracker}))
    return analyze_file(path, opts, detector=detector)


@pytest.mark.parametrize("onset", [2.05, 3.33, 4.9])
def test_event_starts_within_0_3_s_of_true_onset(tmp_path, detector, onset):
    # A person-sized object (~3 % of the frame) walks in at an onset between detect frames.
    spec = VideoSpec(duration_s=onset + 5, boxes=[MovingBox(onset, onset + 2.5, size=(50, 110))], noise_sigma=2.0)
    report = analyze(make_video(tmp_path / "walk.mp4", spec), detector)
    assert len(report.events) == 1
    ev = report.events[0]
    assert abs(ev.start - onset) <= 0.3, ev
    assert ev.end == pytest.approx(ev.last_seen + 2.0)
    assert onset + 2.0 <= ev.last_seen <= onset + 2.8


def test_two_separate_visits_give_two_events(tmp_path, detector):
    spec = VideoSpec(duration_s=14, boxes=[MovingBox(2.0, 4.0), MovingBox(9.0, 11.0)])
    report = analyze(make_video(tmp_path / "two.mp4", spec), detector)
    assert [round(e.start) for e in report.events] == [2, 9]


def test_lighting_flips_and_sensor_noise_do_not_trigger(tmp_path, detector):
    spec = VideoSpec(duration_s=12, light_flips=[2.5, 5.0, 7.5, 10.0], light_gain=1.7, noise_sigma=7.0)
    report = analyze(make_video(tmp_path / "lights.mp4", spec), detector)
    assert report.events == []
    assert report.stats.frames_detect == pytest.approx(60, abs=1)


def test_lights_off_dimming_does_not_trigger(tmp_path, detector):
    spec = VideoSpec(duration_s=10, light_flips=[3.0, 6.0], light_gain=0.4, noise_sigma=3.0)
    assert analyze(make_video(tmp_path / "dim.mp4", spec), detector).events == []


def test_object_after_lighting_change_is_still_detected(tmp_path, detector):
    spec = VideoSpec(duration_s=12, light_flips=[3.0], boxes=[MovingBox(7.0, 9.0)], noise_sigma=3.0)
    report = analyze(make_video(tmp_path / "lit_walk.mp4", spec), detector)
    assert len(report.events) == 1 and abs(report.events[0].start - 7.0) <= 0.3


def test_720p_with_audio_track(tmp_path, detector):
    spec = VideoSpec(width=1280, height=720, duration_s=8, audio=True, boxes=[MovingBox(3.0, 5.0)])
    report = analyze(make_video(tmp_path / "hd.mp4", spec), detector)
    assert len(report.events) == 1 and abs(report.events[0].start - 3.0) <= 0.3
    assert report.stats.frames_decoded == 120


def test_min_frames_filters_a_single_frame_flash(tmp_path, detector):
    # An object visible for a single frame (a bird, a flash): below K=2 frames, no event.
    spec = VideoSpec(duration_s=6, fps=5, boxes=[MovingBox(3.0, 3.2)])
    assert analyze(make_video(tmp_path / "blip.mp4", spec), detector, min_frames=2).events == []


def test_long_gop_noisy_camera_stays_quiet(tmp_path, detector):
    """Regression: skipping the H.264 loop filter to save decode CPU made reference drift build
    up over a 10 s GOP and the keyframe reset then looked like motion. We decode fully."""
    spec = VideoSpec(duration_s=25, gop=150, noise_sigma=8.0)
    assert analyze(make_video(tmp_path / "longgop.mp4", spec), detector).events == []


def test_camera_audio_is_windowed_to_the_end_of_the_file(tmp_path, detector):
    # The last second of a camera file's audio track is heard too (drained, windowed over silence).
    import numpy as np

    from edge_media.config import AudioConfig

    from audio_fixtures import make_camera_clip, pink_noise

    clip = make_camera_clip(tmp_path / "cam.mp4", pink_noise(3 * 48000, 48000, -30.0, np.random.default_rng(0)))
    report = analyze_file(clip, AnalyzeOptions(audio=AudioConfig()), detector=detector)
    times = [t for t, _ in report.audio_trace]
    hop = 7800 / 16000
    assert times and times[-1] >= 3.0 - hop  # without the tail the last window would start at 1.95 s
    assert all(abs((b - a) - hop) < 1e-6 for a, b in zip(times, times[1:]))
