"""Held-out alarm and siren events for evaluation only: another implementation than ``synth.py`` (what
the model trained on) and than the verifier tests' generators, with parameter ranges of its own.

No real smoke/CO alarm or police siren recording exists in any package we can reach (MODEL_CARD.md),
so their recall is measured on these, and reported as SYNTHETIC. Ranges, chosen to be wider than the
training recipe's where the issue asks (pitch, timing, harmonics, clipping, rooms, distance):
- alarms: T3 (60 %) / T4; piezo 2.8-3.8 kHz (training: 2.5-4.2 without 3.6-3.8) with 2nd/3rd harmonics at -35..-6 dB,
  or a 480-560 Hz square-wave sounder (25 %); every on/off duration scaled by 0.9-1.1; 30 % driven into
  hard clipping by 2-10x (a cheap speaker or microphone); 60 % in a room (RT60 0.2-0.7 s, direct-to-
  reverberant ratio -3..+6 dB); 30 % behind a wall (low-pass 1-3 kHz);
- sirens: wail (period 2-8 s; training never draws 6-8), yelp (0.15-0.6 s; training never 0.45-0.6),
  hi-lo (0.8-1.6 s, ratio 1.15-1.5); lowest pitch
  450-900 Hz, highest 1,100-2,000 Hz; 3-9 harmonics; a passing vehicle's Doppler (up to ±6 %) in half;
  distance / window filtering (low-pass 0.8-4 kHz) in half; rooms as above.

An event whose parameter lies in a range training never draws (``synth.HELD_OUT``) has "held-out range"
in its description; home_eval.py reports their recall separately.
"""
from __future__ import annotations

import numpy as np

from synth import HELD_OUT

SR = 16000
T3 = [(0.5, 0.5), (0.5, 0.5), (0.5, 1.5)]
T4 = [(0.1, 0.1)] * 3 + [(0.1, 5.0)]


def _on_off(n: int, pattern: list[tuple[float, float]], onset: int, scale: float) -> np.ndarray:
    g = np.zeros(n, np.float32)
    pos = onset / SR
    while pos < n / SR:
        for on, off in pattern:
            a, b = int(pos * SR), int((pos + on * scale) * SR)
            g[a:min(b, n)] = 1.0
            pos += (on + off) * scale
    ramp = int(0.002 * SR)
    return np.convolve(g, np.ones(ramp) / ramp, mode="same").astype(np.float32)


def _lowpass(x: np.ndarray, fc: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return np.fft.irfft(spec / (1 + (f / fc) ** 4), n=len(x))


def _inside(v: float, rng_: tuple[float, float]) -> bool:
    return bool(rng_[0] <= v < rng_[1])


def _tag(held: bool) -> str:
    return " (held-out range)" if held else ""


def room(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rt60, drr_db = rng.uniform(0.2, 0.7), rng.uniform(-3, 6)
    m = int(rt60 * SR)
    rir = rng.standard_normal(m) * np.exp(-6.9 * np.arange(m) / SR / rt60)
    rir[0] = np.sqrt(np.sum(rir[1:] ** 2) * 10 ** (drr_db / 10))
    return np.fft.irfft(np.fft.rfft(x, len(x) + m) * np.fft.rfft(rir, len(x) + m))[: len(x)]


def alarm(n: int, onset: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    kind = "T3" if rng.random() < 0.6 else "T4"
    tt = np.arange(n) / SR
    if rng.random() < 0.25:
        f0 = rng.uniform(480, 560)
        ph = 2 * np.pi * f0 * tt
        tone = sum(np.sin(k * ph) / k for k in (1, 3, 5, 7, 9))
    else:
        f0 = rng.uniform(2800, 3800)
        ph = 2 * np.pi * f0 * tt + rng.uniform(0, 0.3) * np.sin(2 * np.pi * rng.uniform(1, 6) * tt)
        tone = np.sin(ph) + sum(10 ** (rng.uniform(-35, -6) / 20) * np.sin(k * ph) for k in (2, 3))
    x = tone * _on_off(n, T3 if kind == "T3" else T4, onset, rng.uniform(0.9, 1.1))
    if rng.random() < 0.3:
        drive = rng.uniform(2, 10)
        x = np.clip(x / np.abs(x).max() * drive, -1, 1)
    if rng.random() < 0.6:
        x = room(x, rng)
    if rng.random() < 0.3:
        x = _lowpass(x, rng.uniform(1000, 3000))
    held = _inside(f0, HELD_OUT["alarm_piezo_hz"])
    return (x / (np.abs(x).max() + 1e-9)).astype(np.float32), f"{kind} {f0:.0f} Hz{_tag(held)}"


def siren(n: int, onset: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    kind = str(rng.choice(["wail", "yelp", "hi-lo"]))
    held = False
    tt = np.arange(n) / SR + rng.uniform(0, 5)
    lo, hi = rng.uniform(450, 900), rng.uniform(1100, 2000)
    if kind == "wail":
        period = rng.uniform(2, 8)
        held = _inside(period, HELD_OUT["siren_wail_period_s"])
        f = lo + (hi - lo) * (0.5 - 0.5 * np.cos(2 * np.pi * tt / period))
    elif kind == "yelp":
        period = rng.uniform(0.15, 0.6)
        held = _inside(period, HELD_OUT["siren_yelp_period_s"])
        f = lo + (hi - lo) * np.abs(2 * ((tt / period) % 1.0) - 1) ** rng.uniform(0.7, 1.5)
    else:
        period = rng.uniform(0.8, 1.6)
        hi = lo * rng.uniform(1.15, 1.5)
        f = np.convolve(np.where((tt // (period / 2)) % 2 == 0, lo, hi), np.ones(24) / 24, mode="same")
    if rng.random() < 0.5:  # a passing vehicle
        f = f * (1 + rng.uniform(0.02, 0.06) * -np.tanh((tt - tt.mean()) / rng.uniform(1, 4)))
    ph = 2 * np.pi * np.cumsum(f) / SR
    tilt = rng.uniform(0.5, 1.5)
    x = sum(np.sin(k * ph) / k ** (1 + tilt) for k in range(1, int(rng.integers(3, 10))))
    x[:onset] = 0
    x[onset:onset + 160] *= np.linspace(0, 1, min(160, n - onset))
    if rng.random() < 0.5:
        x = _lowpass(x, rng.uniform(800, 4000))
    if rng.random() < 0.5:
        x = room(x, rng)
    return (x / (np.abs(x).max() + 1e-9)).astype(np.float32), f"{kind} {lo:.0f}-{hi:.0f} Hz{_tag(held)}"


GENERATORS = {"smoke_co_alarm": alarm, "siren": siren}
