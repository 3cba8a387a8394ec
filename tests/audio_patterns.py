"""Real generated audio for the verifier tests: alarms, sirens and the home sounds that fool them.

Every generator takes a ``numpy.random.Generator`` and returns float32 mono at 16 kHz. Written apart
from ``models/audio_events/synth.py`` (what the model trained on) so that the tests do not share the
training recipe's blind spots.
"""

from __future__ import annotations

import numpy as np

SR = 16000


def t(n: int) -> np.ndarray:
    return np.arange(n) / SR


def gate(n: int, pattern: list[tuple[float, float]], offset_s: float, scale: float = 1.0) -> np.ndarray:
    """0/1 gate repeating [(on_s, off_s), ...], starting ``offset_s`` into the signal."""
    g = np.zeros(n)
    pos = offset_s
    while pos < n / SR:
        for on_s, off_s in pattern:
            a, b = int(pos * SR), int((pos + on_s * scale) * SR)
            g[max(a, 0):max(min(b, n), 0)] = 1.0
            pos += (on_s + off_s) * scale
    k = int(0.003 * SR)
    return np.convolve(g, np.ones(k) / k, mode="same")


T3 = [(0.5, 0.5), (0.5, 0.5), (0.5, 1.5)]
T4 = [(0.1, 0.1)] * 3 + [(0.1, 5.0)]


def alarm(n: int, rng: np.random.Generator, *, kind: str, f0: float, onset_s: float,
          scale: float = 1.0, harmonics_db: float = -20.0, square: bool = False) -> np.ndarray:
    """A T3/T4 alarm starting at ``onset_s``: a sine (piezo) or square (low-frequency sounder)."""
    freq = f0 * (1 + 0.002 * np.sin(2 * np.pi * rng.uniform(3, 9) * t(n)))  # a slight wobble
    ph = 2 * np.pi * np.cumsum(freq) / SR
    if square:
        tone = sum(np.sin(k * ph) / k for k in (1, 3, 5, 7))
    else:
        tone = np.sin(ph) + 10 ** (harmonics_db / 20) * np.sin(2 * ph)
    return (tone * gate(n, T3 if kind == "t3" else T4, onset_s, scale)).astype(np.float32)


def siren(n: int, rng: np.random.Generator, *, kind: str, lo: float, hi: float, period: float,
          onset_s: float = 0.0, doppler: float = 0.0) -> np.ndarray:
    tt = t(n)
    if kind == "wail":
        f = lo + (hi - lo) * (0.5 - 0.5 * np.cos(2 * np.pi * tt / period))
    elif kind == "yelp":
        f = lo + (hi - lo) * ((tt / period) % 1.0)
    else:  # hi-lo: half a period on each pitch
        f = np.where((tt // (period / 2)) % 2 == 0, lo, hi)
        f = np.convolve(f, np.ones(30) / 30, mode="same")
    if doppler:  # a vehicle passing: pitch falls by `doppler` (relative) around the middle
        f = f * (1 + doppler / 2 * -np.tanh((tt - tt[-1] / 2) / 1.5))
    ph = 2 * np.pi * np.cumsum(f) / SR
    x = sum(np.sin(k * ph) / k ** 1.5 for k in range(1, 6))
    x[: int(onset_s * SR)] = 0
    return (x / np.abs(x).max()).astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator, rt60: float, drr_db: float = 0.0) -> np.ndarray:
    """A room: exponentially decaying noise (``rt60``) behind the direct sound, ``drr_db`` over it."""
    n = int(rt60 * SR)
    rir = rng.standard_normal(n) * np.exp(-6.9 * t(n) / rt60)
    rir[0] = 0.0
    rir[0] = np.sqrt(np.sum(rir ** 2) * 10 ** (drr_db / 10))  # the direct sound
    y = np.fft.irfft(np.fft.rfft(x, len(x) + n) * np.fft.rfft(rir, len(x) + n))[: len(x)]
    return (y / np.abs(y).max()).astype(np.float32)


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    x = np.fft.irfft(spec / np.sqrt(np.maximum(f, 20)), n)
    return (x / np.std(x)).astype(np.float32)


def mix(sig: np.ndarray, bed: np.ndarray, snr_db: float) -> np.ndarray:
    on = np.abs(sig) > 1e-4
    p_sig = float(np.mean(sig[on] ** 2)) if on.any() else 1.0
    p_bed = float(np.mean(bed ** 2)) + 1e-12
    out = sig + bed * np.sqrt(p_sig / p_bed / 10 ** (snr_db / 10))
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def clip(x: np.ndarray, drive: float) -> np.ndarray:
    """A cheap speaker / microphone driven into hard clipping."""
    return (np.clip(x * drive, -1, 1) / drive).astype(np.float32)


# -- confusers -------------------------------------------------------------------------------------

def birdsong(n: int, rng: np.random.Generator) -> np.ndarray:
    """Phrases of chirps (FM sweeps and steady whistles at 2-5 kHz, many in the piezo band), some
    phrases repeated with a regular rhythm."""
    x = np.zeros(n)
    pos = rng.uniform(0, 0.5)
    while pos < n / SR - 1:
        f = rng.uniform(2000, 5000)
        count, gap, dur = int(rng.integers(2, 7)), rng.uniform(0.08, 0.6), rng.uniform(0.04, 0.35)
        sweep = rng.uniform(-0.4, 0.4)
        for _ in range(count):
            m = int(dur * SR)
            a = int(pos * SR)
            if a + m >= n:
                break
            tt = t(m)
            ff = f * (1 + sweep * tt / dur)
            x[a:a + m] += np.sin(2 * np.pi * np.cumsum(ff) / SR) * np.hanning(m)
            pos += dur + gap
        pos += rng.uniform(0.3, 2.5)
    return x.astype(np.float32)


def music_high_note(n: int, rng: np.random.Generator, *, note_hz: float, bpm: float) -> np.ndarray:
    """A bass line and chords with a repeated high lead note (electronic style: square-ish timbre)."""
    beat = 60 / bpm
    x = np.zeros(n)
    for i in range(int(n / SR / beat)):
        a, m = int(i * beat * SR), int(beat * 0.9 * SR)
        m = min(m, n - a)
        tt = t(m)
        env = np.exp(-tt * 3)
        bass = 55 * 2 ** (rng.integers(0, 12) / 12)
        x[a:a + m] += 0.6 * np.sign(np.sin(2 * np.pi * bass * tt)) * env
        for semi in (0, 4, 7):
            x[a:a + m] += 0.15 * np.sin(2 * np.pi * 440 * 2 ** (semi / 12) * tt) * env
        if i % 2 == 0:
            x[a:a + m // 2] += 0.5 * np.sin(2 * np.pi * note_hz * tt[: m // 2]) * env[: m // 2]
    return x.astype(np.float32)


def microwave_beeps(n: int, rng: np.random.Generator, *, f0: float, onset_s: float) -> np.ndarray:
    """A microwave's end-of-cycle signal: three beeps of 0.3-0.5 s, 0.3 s apart, once."""
    x = np.zeros(n)
    on = rng.uniform(0.3, 0.5)
    for i in range(3):
        a = int((onset_s + i * (on + 0.3)) * SR)
        m = int(on * SR)
        x[a:a + m] = np.sin(2 * np.pi * f0 * t(m))
    return x.astype(np.float32)


def phone_ring(n: int, rng: np.random.Generator, *, f0: float) -> np.ndarray:
    """An electronic ring: a tone warbling at 16-20 Hz, 2 s on / 4 s off (or UK 0.4/0.2/0.4/2)."""
    tt = t(n)
    warble = np.sign(np.sin(2 * np.pi * rng.uniform(16, 20) * tt))
    tone = np.sin(2 * np.pi * np.cumsum(f0 * (1 + 0.05 * warble)) / SR)
    uk = rng.random() < 0.5
    g = gate(n, [(0.4, 0.2), (0.4, 2.0)] if uk else [(2.0, 4.0)], rng.uniform(0, 1))
    return (tone * g).astype(np.float32)
