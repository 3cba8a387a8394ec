"""Principled synthesis of the sounds that real, freely licensed recordings rarely contain.

Everything takes a ``numpy.random.Generator`` so that a fixed seed reproduces the data set, and returns
float32 mono audio at 16 kHz.

* Smoke / CO alarms follow the standard temporal patterns (ISO 8201 / NFPA 72): T3 for smoke
  (0.5 s on, 0.5 s off, x3, then 1.5 s off) and T4 for CO (4 x (0.1 s on, 0.1 s off), then 5 s off),
  timing scaled 0.85-1.15 with per-pulse jitter; a piezo tone of 2.5-4.2 kHz (or a 400-650 Hz square
  wave for low-frequency sounders) with harmonics, drift, warble, clipping, walls.
* Sirens: wail, mechanical wind-up, yelp, hyper-yelp, hi-lo two-tone; 400-2,400 Hz, electronic (odd
  harmonics) or horn-like; Doppler and loudness of a passing vehicle; distance / wall / window filters.
* ``HELD_OUT``: parameter ranges training never draws, for separate held-out recall.
* Glass break, dog bark, baby cry, scream: simple source-filter / modal models. They are crude stand-ins
  that only widen the few real clips; the evaluation never uses them as "real" data.
* Rooms (exponential-decay noise RIRs), cheap-microphone band limits, gain and mixing at a given SNR.
"""
from __future__ import annotations

import numpy as np

SR = 16000


def _t(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / SR


def _ramp_gate(gate: np.ndarray, ramp_s: float = 0.003) -> np.ndarray:
    """Smooth a 0/1 on-off gate with short linear ramps so switching makes no click."""
    k = max(1, int(ramp_s * SR))
    kernel = np.ones(k) / k
    return np.convolve(gate, kernel, mode="same")


def _pattern_gate(n: int, pattern: list[tuple[float, float]], offset_s: float, jitter: float,
                  rng: np.random.Generator) -> np.ndarray:
    """0/1 gate that repeats [(on_s, off_s), ...] from a (possibly negative) phase offset."""
    gate = np.zeros(n)
    pos = -offset_s
    scale = 1.0 + rng.uniform(-jitter, jitter)
    while pos < n / SR:
        for on_s, off_s in pattern:
            a, b = int(pos * SR), int((pos + on_s * scale) * SR)
            gate[max(a, 0):max(min(b, n), 0)] = 1.0
            pos += (on_s + off_s) * scale
    return gate


# Parameter ranges that training never sees, so that held-out recall (heldout_events.py) can be
# reported on them separately: a pitch band of piezo alarms and the slowest wails / yelps.
HELD_OUT = {"alarm_piezo_hz": (3600.0, 3800.0), "siren_wail_period_s": (6.0, 8.0),
            "siren_yelp_period_s": (0.45, 0.6)}


def _uniform_except(rng: np.random.Generator, lo: float, hi: float, hole: tuple[float, float]) -> float:
    """Uniform on [lo, hi] minus the held-out interval ``hole``."""
    a, b = hole
    width = (hi - lo) - (min(b, hi) - max(a, lo))
    u = lo + rng.uniform(0, width)
    return float(u + (b - a) if u >= a else u)


def alarm_tone(n: int, rng: np.random.Generator) -> np.ndarray:
    """Continuous sounder tone: piezo 2.5-4.2 kHz (minus the held-out band) with harmonics, or a
    400-650 Hz low-frequency square wave; sometimes overdriven by a cheap sounder."""
    t = _t(n)
    if rng.random() < 0.2:  # low-frequency (520 Hz) sounders for hearing-impaired / sleeping children
        f0 = rng.uniform(400, 650)
        phase = 2 * np.pi * f0 * t
        x = np.zeros(n)
        for k in (1, 3, 5, 7, 9, 11):  # square wave: odd harmonics at 1/k
            if k * f0 < 0.48 * SR:
                x += np.sin(k * phase) / k ** rng.uniform(0.8, 1.6)
    else:
        f0 = _uniform_except(rng, 2500, 4200, HELD_OUT["alarm_piezo_hz"])
        wobble = 1 + rng.uniform(0, 0.006) * np.sin(2 * np.pi * rng.uniform(1, 15) * t)
        wobble *= 1 + rng.uniform(-0.01, 0.01) * t / max(t[-1], 1e-3)  # a drifting (battery-weak) sounder
        phase = 2 * np.pi * f0 * np.cumsum(wobble) / SR
        x = np.sin(phase)
        for k in (2, 3, 4):
            if 0.48 * SR > k * f0:
                x += 10 ** (rng.uniform(-40, -3) / 20) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
        if rng.random() < 0.25:  # some piezo horns warble between two pitches
            x = np.sin(phase + rng.uniform(0.5, 2) * np.sin(2 * np.pi * rng.uniform(5, 12) * t))
    if rng.random() < 0.3:  # a small sounder or microphone driven into clipping: odd harmonics, square-ish
        x = np.clip(x / (np.max(np.abs(x)) + 1e-9) * rng.uniform(1.5, 8), -1, 1)
    return x / (np.max(np.abs(x)) + 1e-9)


def smoke_co_alarm(n: int, rng: np.random.Generator, *, kind: str | None = None) -> np.ndarray:
    """T3 (smoke) or T4 (CO) alarm of n samples, the pattern starting at a random phase.

    Timing is scaled by 0.85-1.15 (sounders differ) and each pulse jitters a little. The phase is chosen
    so that the window holds at least one "on" burst (a window that falls in the 1.5 s / 5 s pauses
    would be a mislabeled example). 20 % are heard through a wall or door (low-pass 1-4 kHz).
    """
    kind = kind or ("t3" if rng.random() < 0.6 else "t4")
    if kind == "t3":
        on = rng.uniform(0.4, 0.6)
        pattern, period = [(on, 1 - on), (on, 1 - on), (on, 2 - on)], 4.0
    else:
        on = rng.uniform(0.08, 0.12)
        pattern, period = [(on, 0.2 - on)] * 3 + [(on, 5.8 - on - 0.6)], 5.8
    for _ in range(20):
        offset = rng.uniform(0, period)
        gate = _pattern_gate(n, pattern, offset, jitter=0.15, rng=rng)
        if gate.sum() >= 0.07 * SR:
            break
    x = alarm_tone(n, rng) * _ramp_gate(gate, rng.uniform(0.001, 0.01))
    if rng.random() < 0.2:
        x = _one_pole_lowpass(_one_pole_lowpass(x, rng.uniform(1000, 4000)), rng.uniform(1500, 5000))
    return (x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)


def siren(n: int, rng: np.random.Generator, *, kind: str | None = None) -> np.ndarray:
    """Emergency-vehicle siren at a random phase: wail, yelp, hyper-yelp ("phaser"), hi-lo two-tone
    (European), or a mechanical wind-up; electronic (odd harmonics, square-ish) or horn-like harmonic
    tones, 400-2,400 Hz; a passing vehicle's Doppler and loudness swell; distance, walls and windows."""
    kind = kind or str(rng.choice(["wail", "yelp", "hyper", "hilo", "mechanical"]))
    t = _t(n) + rng.uniform(0, 10)
    lo = rng.uniform(400, 1000)
    hi = min(2400.0, lo * rng.uniform(1.4, 3.0))
    if kind == "wail":
        period = _uniform_except(rng, 1.5, 8.0, HELD_OUT["siren_wail_period_s"])
        f = lo + (hi - lo) * (0.5 - 0.5 * np.cos(2 * np.pi * t / period))
    elif kind == "mechanical":  # slow rise, slower fall of a motor-driven siren
        period, rise = rng.uniform(3.0, 10.0), rng.uniform(0.2, 0.5)
        u = (t / period) % 1.0
        f = lo + (hi - lo) * np.where(u < rise, u / rise, np.exp(-3 * (u - rise) / (1 - rise)))
    elif kind in ("yelp", "hyper"):
        period = (_uniform_except(rng, 0.15, 0.6, HELD_OUT["siren_yelp_period_s"]) if kind == "yelp"
                  else rng.uniform(0.06, 0.15))
        saw = (t / period) % 1.0
        shape = rng.integers(0, 3)
        f = lo + (hi - lo) * (saw if shape == 0 else 0.5 - 0.5 * np.cos(2 * np.pi * saw) if shape == 1
                              else np.abs(2 * saw - 1))
    else:
        f_lo = rng.uniform(380, 1000)
        f_hi = f_lo * rng.uniform(1.15, 1.5)
        half = rng.uniform(0.25, 1.0)
        f = np.where((t // half) % 2 == 0, f_lo, f_hi)
        f = np.convolve(f, np.ones(40) / 40, mode="same")
    amp = np.ones(n)
    if rng.random() < 0.5:  # a passing vehicle: pitch falls through the pass, loudness swells and fades
        tp, width = rng.uniform(t[0], t[-1]), rng.uniform(1.0, 5.0)
        f = f * (1 - rng.uniform(0.02, 0.08) * np.tanh((t - tp) / width))
        amp = 1 / (1 + ((t - tp) / width) ** 2) ** 0.5
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = np.zeros(n)
    tilt = rng.uniform(0.2, 1.8)
    odd_only = rng.random() < 0.4  # electronic sirens drive their horn with a square wave
    for k in range(1, 12):
        if odd_only and k % 2 == 0:
            continue
        x += np.where(k * f < 0.48 * SR, np.sin(k * phase + rng.uniform(0, 2 * np.pi)), 0) / k ** (1 + tilt)
    x = x * amp
    if rng.random() < 0.6:  # distance, a wall or a closed window: low-pass
        x = _one_pole_lowpass(x, rng.uniform(700, 4000))
        if rng.random() < 0.5:
            x = _one_pole_lowpass(x, rng.uniform(1000, 5000))
    return (x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)


def _one_pole_lowpass(x: np.ndarray, fc: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return np.fft.irfft(spec / np.sqrt(1 + (f / fc) ** 2), n=len(x))


def glass_break(n: int, rng: np.random.Generator) -> np.ndarray:
    """Impact transient plus a shower of damped high-frequency modes (shards) and tinkles."""
    x = np.zeros(n)
    start = int(rng.uniform(0, 0.4) * SR)
    burst = int(rng.uniform(0.005, 0.03) * SR)
    imp = rng.standard_normal(burst) * np.exp(-np.linspace(0, 5, burst))
    x[start:start + burst] += imp[: max(0, min(burst, n - start))]
    n_shards = rng.integers(20, 90)
    span = rng.uniform(0.2, 0.8)
    for _ in range(n_shards):
        onset = start + int(rng.exponential(span / 3) * SR)
        if onset >= n:
            continue
        dur = int(rng.uniform(0.02, 0.2) * SR)
        tt = np.arange(min(dur, n - onset)) / SR
        f = rng.uniform(1800, 7800)
        amp = rng.uniform(0.05, 0.6) * np.exp(-(onset - start) / SR / span)
        x[onset:onset + len(tt)] += amp * np.sin(2 * np.pi * f * tt) * np.exp(-tt / rng.uniform(0.005, 0.06))
        if rng.random() < 0.3:  # little noisy tinkle
            k = min(int(0.004 * SR), n - onset)
            x[onset:onset + k] += amp * 0.5 * rng.standard_normal(k)
    x = _highpass(x, rng.uniform(800, 2000))
    return (x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)


def _highpass(x: np.ndarray, fc: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return np.fft.irfft(spec * (1 - 1 / np.sqrt(1 + (f / fc) ** 4)), n=len(x))


def _formant_filter(x: np.ndarray, formants: list[tuple[float, float]]) -> np.ndarray:
    """Apply a sum of resonances (centre Hz, bandwidth Hz) as a zero-phase spectral envelope."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    env = np.zeros_like(f)
    for fc, bw in formants:
        env += 1 / (1 + ((f - fc) / (bw / 2)) ** 2)
    return np.fft.irfft(spec * (env + 0.02), n=len(x))


def _voiced(f0: np.ndarray, rng: np.random.Generator, jitter: float, n_harm: int = 20) -> np.ndarray:
    k = max(1, min(80, len(f0)))
    drift = np.convolve(rng.standard_normal(len(f0)), np.ones(k) / np.sqrt(k), mode="same")[: len(f0)]
    f0 = f0 * (1 + jitter * 0.3 * drift)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = np.zeros(len(f0))
    for k in range(1, n_harm + 1):
        x += np.where(k * f0 < 0.48 * SR, np.sin(k * phase), 0) / k
    return x


def _vocal_units(n: int, rng: np.random.Generator, *, unit_s: tuple[float, float], gap_s: tuple[float, float],
                 f0_range: tuple[float, float], formants: list[tuple[float, float]], jitter: float,
                 noise: float, contour: str) -> np.ndarray:
    x = np.zeros(n)
    pos = int(rng.uniform(-0.3, 0.3) * SR)
    while pos < n:
        length = int(rng.uniform(*unit_s) * SR)
        a, b = max(pos, 0), min(pos + length, n)
        if b > a:
            u = np.linspace(0, 1, length)[a - pos:b - pos]
            f_lo, f_hi = sorted(rng.uniform(*f0_range, size=2))
            if contour == "arch":
                f0 = f_lo + (f_hi - f_lo) * np.sin(np.pi * u)
            else:  # falling
                f0 = f_hi - (f_hi - f_lo) * u
            vib = 1 + rng.uniform(0, 0.05) * np.sin(2 * np.pi * rng.uniform(4, 9) * u * length / SR)
            src = _voiced(f0 * vib, rng, jitter) + noise * rng.standard_normal(len(u))
            env = np.minimum(1, np.minimum(u, 1 - u) * rng.uniform(8, 30))
            fm = [(fc * rng.uniform(0.85, 1.15), bw) for fc, bw in formants]
            x[a:b] += _formant_filter(src * env, fm)
        pos += length + int(rng.uniform(*gap_s) * SR)
    return (x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)


def dog_bark(n: int, rng: np.random.Generator) -> np.ndarray:
    """Short (80-250 ms) noisy harmonic bursts with a falling pitch, 1-4 per window."""
    big = rng.random() < 0.5
    return _vocal_units(n, rng, unit_s=(0.08, 0.25), gap_s=(0.15, 0.6),
                        f0_range=(200, 500) if big else (400, 1000),
                        formants=[(700, 400), (1500, 600), (2800, 900)], jitter=0.08,
                        noise=rng.uniform(0.05, 0.5), contour="falling")


def baby_cry(n: int, rng: np.random.Generator) -> np.ndarray:
    """Cry units of 0.4-1.3 s, F0 350-650 Hz arching, with vibrato and short inhalation gaps."""
    return _vocal_units(n, rng, unit_s=(0.4, 1.3), gap_s=(0.08, 0.4), f0_range=(330, 700),
                        formants=[(1000, 400), (3000, 800), (4200, 900)], jitter=0.03,
                        noise=rng.uniform(0.02, 0.2), contour="arch")


def scream(n: int, rng: np.random.Generator) -> np.ndarray:
    """Long, loud, high-pitched, rough vowel /a/ (0.5-2 s)."""
    female = rng.random() < 0.5
    return _vocal_units(n, rng, unit_s=(0.5, 2.0), gap_s=(0.2, 0.8),
                        f0_range=(600, 1500) if female else (300, 800),
                        formants=[(900, 300), (1400, 400), (2900, 700)], jitter=0.12,
                        noise=rng.uniform(0.05, 0.4), contour="arch")


# --- backgrounds ---------------------------------------------------------------------------------

def colored_noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """1/f^exponent noise: 0 white, 1 pink, 2 brown."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    x = np.fft.irfft(spec / f ** (exponent / 2), n=n)
    return (x / (np.std(x) + 1e-9)).astype(np.float32)


def fan_hum(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum (50/60 Hz harmonics) or a fan (blade-pass tone + broadband low noise)."""
    t = _t(n)
    mains = rng.choice([50.0, 60.0])
    x = sum(rng.uniform(0, 1) / k * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6)) for k in range(1, 8))
    x = x + rng.uniform(0.5, 3) * colored_noise(n, rng, rng.uniform(1.0, 2.0))
    return (x / (np.std(x) + 1e-9)).astype(np.float32)


def random_background(n: int, rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(0, 4)
    if kind == 0:
        return colored_noise(n, rng, rng.choice([0.0, 1.0, 2.0]))
    if kind == 1:
        return fan_hum(n, rng)
    if kind == 2:
        return colored_noise(n, rng, rng.uniform(0.5, 2.0))
    return (0.3 * colored_noise(n, rng, 0.0) + colored_noise(n, rng, 2.0)).astype(np.float32)


# --- channel: room, microphone, level --------------------------------------------------------------

def room_ir(rng: np.random.Generator) -> np.ndarray:
    """Synthetic RIR: direct path, a few early reflections and an exponentially decaying noise tail."""
    rt60 = rng.uniform(0.15, 0.9)
    n = int(min(rt60, 0.8) * SR)
    t = np.arange(n) / SR
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail = _one_pole_lowpass(tail, rng.uniform(3000, 7000))
    ir = tail * rng.uniform(0.05, 0.4)
    ir[0] = 1.0
    for _ in range(rng.integers(2, 7)):
        ir[int(rng.uniform(0.002, 0.03) * SR)] += rng.uniform(-0.6, 0.6)
    return (ir / np.sqrt(np.sum(ir ** 2))).astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ir = room_ir(rng)
    m = len(x) + len(ir) - 1
    nfft = 1 << (m - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(ir, nfft), nfft)[: len(x)]
    return y.astype(np.float32)


def cheap_mic(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Band-limit like a small electret / camera microphone (roughly 100-400 Hz to 3.5-7.5 kHz)."""
    lo, hi = rng.uniform(80, 400), rng.uniform(3500, 7600)
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    h = (1 / np.sqrt(1 + (lo / np.maximum(f, 1)) ** 4)) / np.sqrt(1 + (f / hi) ** 8)
    return np.fft.irfft(spec * h, n=len(x)).astype(np.float32)


def random_eq(x: np.ndarray, rng: np.random.Generator, max_db: float = 8.0) -> np.ndarray:
    """A smooth random tilt/colour (+-max_db at 6 log-spaced frequencies, interpolated): rooms, walls,
    enclosures and microphones colour every recording differently; the model must not care."""
    f = np.fft.rfftfreq(len(x), 1 / SR)
    nodes = np.geomspace(60, 8000, 6)
    gains_db = rng.uniform(-max_db, max_db, len(nodes))
    g = 10 ** (np.interp(np.log(np.maximum(f, 30)), np.log(nodes), gains_db) / 20)
    return np.fft.irfft(np.fft.rfft(x) * g, n=len(x)).astype(np.float32)


def room_tone(n: int, rng: np.random.Generator, dbfs: float = -68.0) -> np.ndarray:
    """A quiet room's noise floor: the gap between clips in the calibration and evaluation streams."""
    return (rng.standard_normal(n) * 10 ** (dbfs / 20)).astype(np.float32)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def mix_at_snr(event: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    """event + background scaled so that the event's active RMS is snr_db above the background's."""
    active = event[np.abs(event) > 0.05 * (np.max(np.abs(event)) + 1e-9)]
    ev = rms(active) if active.size else rms(event)
    bg = rms(background)
    return (event + background * (ev / bg) * 10 ** (-snr_db / 20)).astype(np.float32)


def set_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale to a given RMS level in dBFS and hard-limit to [-1, 1] (like an overdriven ADC)."""
    y = x * (10 ** (dbfs / 20) / rms(x))
    return np.clip(y, -1.0, 1.0).astype(np.float32)


SYNTH_EVENTS = {
    "smoke_co_alarm": smoke_co_alarm,
    "siren": siren,
    "glass_break": glass_break,
    "dog_bark": dog_bark,
    "baby_cry": baby_cry,
    "scream": scream,
}
