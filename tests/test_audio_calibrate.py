"""Threshold calibration (models/audio_events/calibrate.py) counts false events the way the hub's event
logic (edge_media/audio/events.py) starts them; otherwise a "0.5 per hour" threshold would mean
something else on a hub."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models" / "audio_events"))

from edge_media.audio.events import AudioEventLogic

import calibrate

LABELS = ["background", "dog_bark", "speech"]
HOP_S = calibrate.HOP / calibrate.SR


def runtime_starts(s: np.ndarray, threshold: float, min_duration_s: float) -> int:
    logic = AudioEventLogic("cal", LABELS, {"dog_bark": threshold}, min_duration_s=min_duration_s,
                            hysteresis=calibrate.HYSTERESIS, end_after_s=calibrate.END_AFTER_S, hop_s=HOP_S)
    starts = 0
    for i, v in enumerate(s):
        starts += sum(tr.kind == "start" for tr in logic.update(i * HOP_S, [0.0, float(v), 0.0]))
    return starts


@pytest.mark.parametrize("dur, windows", [(0.0, 1), (0.5, 2), (0.9, 2), (1.4, 3)])
def test_min_windows_match_the_runtime(dur, windows):
    assert calibrate.min_windows(dur) == windows
    run = np.array([0.0] * 5 + [0.9] * windows + [0.0] * 20)
    short = np.array([0.0] * 5 + [0.9] * (windows - 1) + [0.0] * 20)
    assert runtime_starts(run, 0.5, dur) == calibrate.count_events(run, 0.5, windows) == 1
    assert runtime_starts(short, 0.5, dur) == calibrate.count_events(short, 0.5, windows) == 0


@settings(max_examples=200, deadline=None)
@given(scores=st.lists(st.sampled_from([0.0, 0.3, 0.45, 0.55, 0.7, 0.95]), min_size=1, max_size=60),
       threshold=st.sampled_from([0.4, 0.5, 0.6, 0.9]), dur=st.sampled_from([0.0, 0.5, 1.4]))
def test_calibration_fires_exactly_when_the_runtime_does(scores, threshold, dur):
    # the threshold calibration picks is "the lowest with no false event": that needs the same verdict
    s = np.array(scores, np.float32)
    k = calibrate.min_windows(dur)
    assert (calibrate.count_events(s, threshold, k) > 0) == (runtime_starts(s, threshold, dur) > 0)


@settings(max_examples=100, deadline=None)
@given(bursts=st.lists(st.tuples(st.integers(1, 6), st.sampled_from([0.55, 0.75, 0.99])), min_size=1, max_size=8),
       dur=st.sampled_from([0.0, 0.5, 1.4]))
def test_separate_episodes_are_counted_one_event_each(bursts, dur):
    # bursts far apart (longer than end_after_s) are separate events in both
    gap = [0.0] * 12
    s = np.array(gap + sum(([v] * n + gap for n, v in bursts), []), np.float32)
    k = calibrate.min_windows(dur)
    assert calibrate.count_events(s, 0.5, k) == runtime_starts(s, 0.5, dur)


def test_calibrate_picks_the_lowest_threshold_within_budget():
    rng = np.random.default_rng(0)
    labels = ["background", "siren", "speech"]
    s = rng.uniform(0, 0.3, (8000, 3)).astype(np.float32)
    s[1000:1004, 1] = 0.62  # one false siren episode peaking at 0.62
    out = calibrate.calibrate(s, labels, ["siren"], {"siren": 1.4}, hours=1.0)["siren"]
    assert out["allowed"] == 0 and out["budget_met"]
    assert out["threshold"] == pytest.approx(0.63)  # just above the false episode
    assert out["calibration_false_events"] == 0 and out["false_events_at_0.5"] == 1
    s[2000:2004, 1] = 0.99  # an episode no threshold in range can avoid: the top of the range, reported
    out = calibrate.calibrate(s, labels, ["siren"], {"siren": 1.4}, hours=1.0)["siren"]
    assert out["threshold"] == calibrate.THRESHOLD_RANGE[1] and not out["budget_met"]
    assert out["calibration_false_events"] == 1


def test_window_scores_skip_silence_and_follow_the_hop():
    rng = np.random.default_rng(1)
    x = np.concatenate([np.zeros(16000 * 3, np.float32), 0.1 * rng.standard_normal(16000 * 3).astype(np.float32)])
    seen = []

    def predict(w):
        seen.append(len(w))
        return np.ones((len(w), 2), np.float32)

    out = calibrate.window_scores(x, predict, 15600, 2)
    starts = np.arange(0, len(x) - 15600 + 1, calibrate.HOP)
    assert out.shape == (len(starts), 2)
    loud = starts + 15600 > 16000 * 3  # any window that reaches the noise is above -60 dBFS
    assert np.all(out[loud] == 1) and np.all(out[~loud] == 0) and sum(seen) == loud.sum()
