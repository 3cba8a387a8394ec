"""Synthetic hard negatives: tonal household sounds that are NOT events, but look like them to a
small model (the first evaluation's false alarms came from music, a lark's song and UI chimes).

* music: melodies and chords in a random key and tempo, with organ / flute / string / pluck / bell
  timbres, some in a high register (fundamentals up to ~2.6 kHz, harmonics at the alarm's 3 kHz),
  optionally with a drum pattern;
* bird song: trills and chirps of fast FM sweeps at 1.5-8 kHz, and whistled notes (1.8-5 kHz) repeated
  in phrases;
* bells: doorbell ding-dong, wind chimes, notification jingles (inharmonic, decaying partials);
* telephone: electromechanical bell ring (two bells struck at ~20 Hz) or electronic ring tones;
* whistling: a person whistling a tune (0.9-2.7 kHz sinusoid with vibrato and glides);
* electronic music: square / saw leads and arpeggios up to ~4 kHz, pulsing bass, drums, pumping;
* clinking: cutlery and glasses, isolated short inharmonic rings (not glass breaking);
* kettle: a steady, slowly rising whistle (a continuous tone is not a T3/T4 alarm).

What is left out on purpose: appliance beeps. A microwave's beeps or a long steady tone
are too close to the smoke / CO alarm patterns (T3/T4 and the sounders that beep continuously) to be
taught as "never an alarm" without hurting recall on real alarms.

Like ``synth.py``, every function takes a seeded ``numpy.random.Generator`` and returns float32 16 kHz
mono audio of ``n`` samples, normalised to unit RMS (levels are set later by the channel).
"""
from __future__ import annotations

import numpy as np

SR = 16000
_BELL_PARTIALS = np.array([0.5, 1.0, 1.183, 1.506, 2.0, 2.514, 2.662, 3.011, 4.166])  # minor-third bell


def _norm(x: np.ndarray) -> np.ndarray:
    return (x / (np.std(x) + 1e-9)).astype(np.float32)


def _midi_hz(m: np.ndarray | float) -> np.ndarray | float:
    return 440.0 * 2 ** ((np.asarray(m) - 69) / 12)


def _adsr(n: int, attack_s: float, decay_s: float, sustain: float, release_s: float) -> np.ndarray:
    t = np.arange(n) / SR
    env = np.minimum(1.0, t / max(attack_s, 1e-4))
    env = np.where(t > attack_s, sustain + (1 - sustain) * np.exp(-(t - attack_s) / max(decay_s, 1e-3)), env)
    tail = max(1, int(release_s * SR))
    if n > tail:
        env[-tail:] *= np.linspace(1, 0, tail)
    return env


def _note(f0: float, n: int, timbre: str, rng: np.random.Generator) -> np.ndarray:
    """One note of ``n`` samples with a timbre's partials and envelope (no aliasing above 7.9 kHz)."""
    t = np.arange(n) / SR
    vibrato = timbre in ("flute", "string")
    vib = 1 + (rng.uniform(0.002, 0.008) * np.sin(2 * np.pi * rng.uniform(4, 7) * t) if vibrato else 0)
    phase = 2 * np.pi * f0 * np.cumsum(np.broadcast_to(vib, t.shape)) / SR
    if timbre == "bell":
        ratios, amps, decays = _BELL_PARTIALS, 1 / (1 + np.arange(len(_BELL_PARTIALS))) ** 0.5, None
    elif timbre == "pluck":
        ratios = np.arange(1, 16, dtype=float)
        amps, decays = 1 / ratios, 0.15 + 1.2 / ratios
    else:
        ratios = np.arange(1, 12, dtype=float)
        tilt = {"organ": 0.7, "flute": 2.5, "string": 1.2, "brass": 0.9}.get(timbre, 1.0)
        amps, decays = ratios ** -tilt, None
    x = np.zeros(n)
    for k, (r, a) in enumerate(zip(ratios, amps)):
        if f0 * r > 7800:
            break
        partial = a * np.sin(r * phase + rng.uniform(0, 2 * np.pi))
        if timbre == "bell":
            partial *= np.exp(-t * (0.6 + 0.8 * k))
        elif decays is not None:
            partial *= np.exp(-t / decays[k])
        x += partial
    if timbre in ("pluck", "bell"):
        return x * np.minimum(1.0, t / 0.002)
    return x * _adsr(n, rng.uniform(0.01, 0.08), rng.uniform(0.1, 0.4), rng.uniform(0.5, 0.9), 0.03)


def _drums(n: int, beat_s: float, rng: np.random.Generator) -> np.ndarray:
    x = np.zeros(n)
    k = max(1, int(0.25 * SR))
    t = np.arange(k) / SR
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 12)
    noise = rng.standard_normal(k)
    snare = noise * np.exp(-t * 25)
    hat = np.diff(noise, prepend=0) * np.exp(-t * 80)
    step = beat_s / 2
    for i in range(int(n / SR / step) + 1):
        pos = int(i * step * SR)
        for hit, on in ((kick, i % 4 == 0), (snare, i % 4 == 2), (hat, True)):
            if on and pos < n:
                m = min(k, n - pos)
                x[pos:pos + m] += hit[:m] * rng.uniform(0.6, 1.0)
    return x


def music(n: int, rng: np.random.Generator) -> np.ndarray:
    """A melody (sometimes high, sometimes with chords and drums) in a random key and tempo."""
    beat_s = 60 / rng.uniform(60, 180)
    key = rng.integers(0, 12)
    scale = np.array([0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.6 else [0, 2, 3, 5, 7, 8, 10])
    low = rng.choice([55, 62, 70, 79])  # up to ~G5..G7 melodies: their harmonics reach 3 kHz
    timbre = rng.choice(["organ", "flute", "string", "pluck", "bell", "brass"])
    out = np.zeros(n)
    pos = int(rng.uniform(-0.5, 0) * beat_s * SR)
    degree = int(rng.integers(0, 7))
    while pos < n:
        dur = int(beat_s * rng.choice([0.5, 1.0, 1.0, 2.0]) * SR)
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, 13))
        pitch = low + key + scale[degree % 7] + 12 * (degree // 7)
        a, b = max(pos, 0), min(pos + dur, n)
        if b > a and rng.random() < 0.9:
            note = _note(float(_midi_hz(pitch)), pos + dur - pos, timbre, rng)
            out[a:b] += note[a - pos:b - pos]
        pos += dur
    if rng.random() < 0.5:  # a chord pad under the melody
        chord_timbre = rng.choice(["organ", "string"])
        root = low - 12 + key
        for step in (0, 4 if scale[2] == 4 else 3, 7):
            out += 0.3 * _note(float(_midi_hz(root + step)), n, chord_timbre, rng)
    if rng.random() < 0.4:
        out = out / (np.std(out) + 1e-9) + rng.uniform(0.3, 1.0) * _norm(_drums(n, beat_s, rng))
    return _norm(out)


def bird_song(n: int, rng: np.random.Generator) -> np.ndarray:
    """Syllables of fast FM sweeps (1.5-8 kHz), repeated as trills, with pauses between phrases."""
    out = np.zeros(n)
    pos = int(rng.uniform(0, 0.3) * SR)
    while pos < n:
        syl_s, reps = rng.uniform(0.02, 0.15), int(rng.integers(1, 12))
        gap_s = rng.uniform(0.01, 0.08)
        f_a, f_b = rng.uniform(1500, 7500, 2)
        k = int(syl_s * SR)
        t = np.arange(k) / SR
        shape = rng.choice(["lin", "up-down", "wobble"])
        if shape == "lin":
            f = f_a + (f_b - f_a) * t / syl_s
        elif shape == "up-down":
            f = f_a + (f_b - f_a) * np.sin(np.pi * t / syl_s)
        else:
            f = f_a * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(30, 120) * t))
        syl = np.sin(2 * np.pi * np.cumsum(np.minimum(f, 7900)) / SR) * np.sin(np.pi * t / syl_s) ** 2
        for _ in range(reps):
            if pos >= n:
                break
            m = min(k, n - pos)
            out[pos:pos + m] += syl[:m] * rng.uniform(0.6, 1.0)
            pos += k + int(gap_s * SR)
        pos += int(rng.uniform(0.1, 1.2) * SR)
    return _norm(out + 1e-3 * rng.standard_normal(n))


def bells(n: int, rng: np.random.Generator) -> np.ndarray:
    """Doorbell ding-dong, a wind chime, or a short notification jingle."""
    kind = rng.integers(0, 3)
    out = np.zeros(n)
    if kind == 0:
        f = rng.uniform(500, 1200)
        hits = [(0.0, f), (rng.uniform(0.4, 0.8), f / rng.choice([1.19, 1.25, 1.33]))]
        offset = rng.uniform(-0.6, 0.3)
    elif kind == 1:
        base = rng.uniform(600, 1800)
        hits = [(rng.uniform(0, n / SR), base * rng.choice([1, 1.125, 1.25, 1.5, 1.68, 2.0]))
                for _ in range(rng.integers(3, 10))]
        offset = 0.0
    else:
        base = rng.uniform(700, 2000)
        step = rng.uniform(0.06, 0.15)
        hits = [(i * step, base * 2 ** (s / 12)) for i, s in enumerate(rng.choice([0, 4, 7, 12], rng.integers(2, 5)))]
        offset = rng.uniform(-0.2, 0.4)
    for start, f in hits:
        pos = int((start + offset) * SR)
        if pos >= n:
            continue
        a = max(pos, 0)
        note = _note(f, n - pos, "bell", rng) if pos >= 0 else _note(f, n - pos, "bell", rng)[-pos:]
        out[a:] += note[: n - a]
    return _norm(out + 1e-3 * rng.standard_normal(n))


def telephone(n: int, rng: np.random.Generator) -> np.ndarray:
    """A bell telephone (two bells struck ~20 times a second) or an electronic ring tone, with cadence."""
    t = np.arange(n) / SR
    on_s, off_s = rng.choice([(2.0, 4.0), (0.4, 0.2), (1.0, 2.0), (1.5, 3.0)])
    cycle = on_s + off_s
    gate = ((t + rng.uniform(0, cycle)) % cycle) < on_s
    if rng.random() < 0.5:
        f = rng.uniform(700, 1400)
        strike = 0.5 * (1 + np.sign(np.sin(2 * np.pi * rng.uniform(16, 25) * t)))
        x = sum(np.sin(2 * np.pi * f * r * t) / (1 + i) for i, r in enumerate(_BELL_PARTIALS[1:6]))
        x = x * (0.3 + 0.7 * strike)
    else:
        f1, f2 = rng.choice([(440, 480), (400, 450), (1000, 1250), (950, 1400)])
        x = np.sin(2 * np.pi * f1 * t) + np.sin(2 * np.pi * f2 * t)
        if rng.random() < 0.5:
            x *= 0.5 * (1 + np.sign(np.sin(2 * np.pi * rng.uniform(10, 25) * t)))
    return _norm(x * gate + 1e-3 * rng.standard_normal(n))


def whistling(n: int, rng: np.random.Generator) -> np.ndarray:
    """A person whistling: a near-pure tone 0.9-2.7 kHz gliding between notes, with vibrato and breath noise."""
    t = np.arange(n) / SR
    notes = rng.uniform(900, 2700, rng.integers(2, 7))
    f = np.interp(t, np.linspace(0, n / SR, len(notes)), notes)
    f = f * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
    x = np.sin(2 * np.pi * np.cumsum(f) / SR)
    env = np.clip(np.sin(np.pi * (t * rng.uniform(0.8, 3)) % np.pi) * 3, 0, 1)
    return _norm(x * env + 0.05 * rng.standard_normal(n))


def electronic_music(n: int, rng: np.random.Generator) -> np.ndarray:
    """Electronic dance / game music: a square or saw lead or a fast arpeggio (up to ~4 kHz fundamentals,
    the alarm's band), a pulsing bass, four-on-the-floor drums, side-chain pumping."""
    bpm = rng.uniform(90, 175)
    beat_s = 60 / bpm
    step_s = beat_s / rng.choice([2, 4])
    key = rng.integers(0, 12)
    scale = np.array([0, 3, 5, 7, 10] if rng.random() < 0.5 else [0, 2, 4, 7, 9])
    low = rng.choice([60, 72, 84, 91])  # C4 .. G6: leads whose notes or harmonics sit at 2.5-4 kHz
    wave = rng.choice(["square", "saw", "pulse"])
    t = np.arange(n) / SR
    notes = low + key + scale[rng.integers(0, 5, int(n / SR / step_s) + 2)] + 12 * rng.integers(0, 2, 1)
    f = _midi_hz(notes[(t / step_s).astype(int)])
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = np.zeros(n)
    for k in range(1, 30):
        if wave == "square" and k % 2 == 0:
            continue
        a = 1 / k if wave != "pulse" else np.sin(np.pi * k * 0.25) / k
        x += np.where(k * f < 7800, a * np.sin(k * phase), 0)
    gate_on = rng.uniform(0.3, 0.95)
    x *= ((t / step_s) % 1.0) < gate_on  # staccato steps
    bass_f = _midi_hz(low - 24 + key) * np.where((t / beat_s) % 1.0 < 0.5, 1, 1.5)
    x += rng.uniform(0.3, 1.0) * np.sign(np.sin(2 * np.pi * np.cumsum(bass_f) / SR))
    if rng.random() < 0.7:
        x = x / (np.std(x) + 1e-9) + rng.uniform(0.3, 1.2) * _norm(_drums(n, beat_s, rng))
    if rng.random() < 0.5:  # side-chain pumping against the kick
        x *= 1 - 0.6 * np.exp(-((t / beat_s) % 1.0) * 8)
    return _norm(x)


def clinking(n: int, rng: np.random.Generator) -> np.ndarray:
    """Cutlery, glasses and dishes: isolated short inharmonic rings (2-8 kHz), not a shattering shower."""
    out = np.zeros(n)
    for _ in range(rng.integers(1, 7)):
        pos = int(rng.uniform(0, n / SR) * SR)
        k = min(n - pos, int(rng.uniform(0.05, 0.6) * SR))
        tt = np.arange(k) / SR
        base = rng.uniform(1500, 5000)
        ring = sum(rng.uniform(0.2, 1) * np.sin(2 * np.pi * base * r * tt) * np.exp(-tt * rng.uniform(8, 40))
                   for r in (1.0, rng.uniform(1.3, 1.9), rng.uniform(2.2, 3.1)) if base * r < 7800)
        out[pos:pos + k] += ring * rng.uniform(0.3, 1.0)
        out[pos:pos + min(k, 40)] += 0.3 * rng.standard_normal(min(k, 40))  # the tap itself
    return _norm(out + 1e-3 * rng.standard_normal(n))


def kettle(n: int, rng: np.random.Generator) -> np.ndarray:
    """A whistling kettle: a steady, slowly rising breathy tone (1.2-3.2 kHz), not pulsed."""
    t = np.arange(n) / SR
    f = rng.uniform(1200, 3000) * (1 + rng.uniform(0, 0.08) * t / (t[-1] + 1e-9))
    f = f * (1 + 0.004 * np.sin(2 * np.pi * rng.uniform(3, 9) * t))
    x = np.sin(2 * np.pi * np.cumsum(f) / SR) * np.minimum(1, t * rng.uniform(0.5, 5))
    return _norm(x + rng.uniform(0.05, 0.4) * rng.standard_normal(n))


def bird_whistles(n: int, rng: np.random.Generator) -> np.ndarray:
    """Whistled bird notes (tit, blackbird, cuckoo-like): near-pure tones 1.8-5 kHz of 0.05-0.4 s,
    repeated in a phrase at a steady rate, each note gliding or bending a little. Beep-like to a
    one-second model; a real piezo holds its pitch, a bird rarely does."""
    out = np.zeros(n)
    pos = int(rng.uniform(-0.5, 0.3) * SR)
    while pos < n:
        notes = rng.uniform(1800, 5000, rng.integers(1, 3))
        dur, gap = rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.5)
        glide = rng.uniform(-0.15, 0.15)
        for _ in range(int(rng.integers(2, 7))):
            for f0 in notes:
                k = int(dur * SR)
                tt = np.arange(k) / SR
                f = f0 * (1 + glide * tt / dur + 0.01 * np.sin(2 * np.pi * rng.uniform(10, 40) * tt))
                note = np.sin(2 * np.pi * np.cumsum(f) / SR) * np.sin(np.pi * tt / dur) ** 0.5
                a, b = max(pos, 0), min(pos + k, n)
                if b > a:
                    out[a:b] += note[a - pos:b - pos] * rng.uniform(0.6, 1.0)
                pos += k + int(gap * SR)
        pos += int(rng.uniform(0.3, 2.0) * SR)
    return _norm(out + 1e-3 * rng.standard_normal(n))


CONFUSERS = {"music": music, "electronic_music": electronic_music, "clinking": clinking, "kettle": kettle,
             "bird_song": bird_song, "bird_whistles": bird_whistles, "bells": bells, "telephone": telephone,
             "whistling": whistling}


def confuser(n: int, rng: np.random.Generator) -> np.ndarray:
    kinds = sorted(CONFUSERS)
    return CONFUSERS[kinds[rng.integers(len(kinds))]](n, rng)
