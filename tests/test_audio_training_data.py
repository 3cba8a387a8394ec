"""The audio model's training-data generators (models/audio_events): seeded, finite, the right shape,
and the hard negatives really are what they claim (tonal, but not the alarm's on/off pattern)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models" / "audio_events"))

import negatives
import synth

N = 15600


@pytest.mark.parametrize("kind", sorted(negatives.CONFUSERS))
def test_confusers_are_seeded_finite_unit_rms(kind):
    make = negatives.CONFUSERS[kind]
    a, b = make(N, np.random.default_rng(3)), make(N, np.random.default_rng(3))
    assert a.shape == (N,) and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert np.array_equal(a, b)  # same seed, same audio: the data set is reproducible
    assert synth.rms(a) == pytest.approx(1.0, rel=0.05)
    assert not np.array_equal(a, make(N, np.random.default_rng(4)))


def _band_share(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    return float(spec[(f >= lo) & (f <= hi)].sum() / spec.sum())


def test_whistling_stays_below_the_piezo_band():
    # the alarm sounders are 2.9-3.5 kHz; a whistle taught as "not an alarm" must not sit there
    rng = np.random.default_rng(0)
    shares = [_band_share(negatives.whistling(N, rng), 2900, 3500) for _ in range(20)]
    assert max(shares) < 0.05


def test_music_has_notes_not_noise():
    # tonal: most energy in a few spectral peaks (pink noise would spread it)
    rng = np.random.default_rng(1)
    for _ in range(5):
        spec = np.sort(np.abs(np.fft.rfft(negatives.music(N, rng))) ** 2)[::-1]
        assert spec[:200].sum() / spec.sum() > 0.5
