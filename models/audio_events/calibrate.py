"""Thresholds for a false-event budget, not for F1 (issue 12): ``train.py`` calls ``calibrate``.

A household judges the detector by how often it cries wolf, so each product label's threshold is the
lowest one at which a long CALIBRATION stream raises at most ``budget x hours x SAFETY`` false events,
counted the way the runtime counts them (``edge_media/audio/events.py``): windows every 0.4875 s, a
silence gate, an event once the label has been heard for its minimum duration (the first window at or
above the threshold, the following ones above threshold - hysteresis), and one event per episode
(windows heard again within ``end_after_s`` belong to the same event).

The calibration stream never touches the test packages or the home-like pool: it is the VALIDATION
split's real background and speech clips (training packages, files held out of training by hash),
played one after another at household levels, plus synthetic household confusers (negatives.py) with
their own seed. Both are negatives by construction, so every event on them is a false one.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from edge_media.config import AudioConfig

import negatives
import synth

# the hub's own defaults, so that a calibrated threshold means on a hub what it meant here
_RUNTIME = AudioConfig()
SR = 16000
HOP = round(_RUNTIME.hop_s * SR)  # 7800 samples: half of the 15,600-sample window
SILENCE_DBFS = _RUNTIME.silence_dbfs
HYSTERESIS = _RUNTIME.hysteresis
END_AFTER_S = _RUNTIME.end_after_s
# false events per hour each label may raise on the calibration stream (the targets), and the
# share of it calibration spends: the stream is finite, so the threshold keeps a margin below the budget
BUDGET_PER_HOUR = {"smoke_co_alarm": 0.04, "siren": 0.5, "dog_bark": 0.5, "glass_break": 0.5,
                   "baby_cry": 0.5, "scream": 0.5}
SAFETY = 0.5
THRESHOLD_RANGE = (0.4, 0.95)  # never below 0.4 (unseen homes are noisier than any stream); 0.95 at most


def stream(clips: Sequence[np.ndarray], confuser_s: float, rng: np.random.Generator) -> np.ndarray:
    """Validation clips back to back (a second of quiet room between, each at -38..-18 dBFS), then
    ``confuser_s`` of synthetic household confusers over room noise in 8 s pieces."""
    parts = []
    for x in clips:
        parts += [synth.set_level(x, rng.uniform(-38, -18)), synth.room_tone(SR, rng)]
    for _ in range(int(confuser_s // 8)):
        parts += [confuser_piece(8 * SR, rng), synth.room_tone(SR, rng)]
    return np.concatenate(parts).astype(np.float32)


def confuser_piece(n: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic household confuser (negatives.py), half of them in a room, over room noise at
    5-30 dB, at a household level (-38..-18 dBFS)."""
    c = negatives.confuser(n, rng)
    if rng.random() < 0.5:
        c = synth.reverb(c, rng)
    c = synth.mix_at_snr(c, synth.random_background(n, rng), rng.uniform(5, 30))
    return synth.set_level(c, rng.uniform(-38, -18))


def window_scores(x: np.ndarray, predict: Callable[[np.ndarray], np.ndarray], window: int,
                  labels: int) -> np.ndarray:
    """Scores of every hop-spaced window (silent windows score 0, as the runtime skips them)."""
    starts = np.arange(0, len(x) - window + 1, HOP)
    frames = np.lib.stride_tricks.sliding_window_view(x, window)[starts]
    loud = 20 * np.log10(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-12) > SILENCE_DBFS
    out = np.zeros((len(starts), labels), np.float32)
    idx = np.flatnonzero(loud)
    for i in range(0, len(idx), 256):
        out[idx[i:i + 256]] = predict(np.ascontiguousarray(frames[idx[i:i + 256]]))
    return out


def count_events(s: np.ndarray, threshold: float, min_windows: int) -> int:
    """Events the runtime logic would start on one label's window scores at ``threshold``."""
    k = min_windows
    if len(s) < k:
        return 0
    if k > 1:  # a run starts at >= threshold and goes on for k - 1 windows at >= threshold - hysteresis
        tail = np.lib.stride_tricks.sliding_window_view(s[1:], k - 1).min(axis=1)
        v = np.minimum(s[: len(tail)], tail + HYSTERESIS)
    else:
        v = s
    fire = np.flatnonzero(v >= threshold)
    if not fire.size:
        return 0
    gap = int(math.ceil(END_AFTER_S * SR / HOP)) + k
    return int(1 + np.sum(np.diff(fire) > gap))


def min_windows(min_duration_s: float) -> int:
    return max(1, math.ceil(min_duration_s / (HOP / SR) - 1e-6))


def calibrate(scores: np.ndarray, labels: Sequence[str], product: Sequence[str], min_duration_s: dict[str, float],
              hours: float) -> dict[str, dict]:
    """Per product label: the lowest threshold within THRESHOLD_RANGE whose false events on the stream fit
    the budget; the highest of the range (and the count there) when none does."""
    out = {}
    grid = np.round(np.arange(THRESHOLD_RANGE[0], THRESHOLD_RANGE[1] + 1e-9, 0.01), 2)
    for label in product:
        s = scores[:, labels.index(label)]
        k = min_windows(min_duration_s[label])
        allowed = math.floor(BUDGET_PER_HOUR[label] * hours * SAFETY)
        counts = [count_events(s, float(t), k) for t in grid]
        ok = [t for t, c in zip(grid, counts) if c <= allowed]
        thr = float(ok[0]) if ok else float(grid[-1])
        out[label] = {"threshold": thr, "calibration_false_events": counts[list(grid).index(thr)],
                      "allowed": allowed, "false_events_at_0.5": count_events(s, 0.5, k),
                      "budget_met": bool(ok)}
    return out
