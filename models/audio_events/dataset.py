"""Training / validation windows: real clips + synthesis, augmented and mixed, fully seeded.

Every window is made from its own ``SeedSequence`` child, so the data set is identical whatever the
number of worker processes.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import tempfile

import numpy as np

import negatives
import sources
import synth
from features import WINDOW_SAMPLES

LABELS = ["background", "smoke_co_alarm", "glass_break", "dog_bark", "baby_cry", "scream", "siren", "speech"]
PRODUCT = [label for label in LABELS if label not in ("background", "speech")]
# Share of a label's windows built from a real clip when the split has one (the rest is synthesis).
REAL_SHARE = {"dog_bark": 0.6, "scream": 0.7, "siren": 0.2, "glass_break": 0.5, "baby_cry": 0.3}
W = WINDOW_SAMPLES

_POOL: dict = {}  # per-process: {"events": {label: [arrays]}, "background": [...], "speech": [...]}


def load_pools(clips: list[sources.Clip], split: str, espeak: list[np.ndarray]) -> dict:
    """Decode the split's clips into pools of arrays (events per label, background, speech)."""
    pools: dict = {"events": {}, "background": [], "speech": list(espeak)}
    for c in clips:
        if c.split != split:
            continue
        x = sources.load_audio(c.path, c.max_seconds)
        if x.size < 400 or synth.rms(x) < 1e-4:
            continue
        if c.label == "background":
            pools["background"].append(x)
        elif c.label == "speech":
            pools["speech"].append(x)
        else:
            pools["events"].setdefault(c.label, []).append(x)
    return pools


def espeak_audio(seed: int, count: int) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        return [x for _, x in sources.espeak_clips(seed, count, tmp)]


# --- window makers -------------------------------------------------------------------------------

def crop(x: np.ndarray, rng: np.random.Generator, n: int = W, *, loud: bool = False) -> np.ndarray:
    """A window of n samples from x: a random crop, or (loud) one that holds the loudest part.

    Shorter clips are placed at a random offset in zeros.
    """
    if x.size <= n:
        out = np.zeros(n, np.float32)
        off = rng.integers(0, n - x.size + 1)
        out[off:off + x.size] = x
        return out
    if loud:
        hop = 160
        env = np.convolve(np.abs(x), np.ones(hop) / hop, mode="same")
        peak = int(np.argmax(env))
        lo, hi = max(0, peak - n + n // 5), min(x.size - n, peak - n // 5)
        start = rng.integers(lo, hi + 1) if hi >= lo else int(np.clip(peak - n // 2, 0, x.size - n))
    else:
        start = rng.integers(0, x.size - n + 1)
    return x[start:start + n].astype(np.float32)


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Resample by linear interpolation: pitch and tempo change together (like a smaller dog)."""
    n = max(2, int(len(x) / factor))
    return np.interp(np.linspace(0, len(x) - 1, n), np.arange(len(x)), x).astype(np.float32)


def background_bed(pools: dict, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Room tone: real background, synthetic noise, speech, or a mix. Returns (audio, has_speech)."""
    r = rng.random()
    has_speech = False
    if r < 0.45 and pools["background"]:
        bed = crop(pools["background"][rng.integers(len(pools["background"]))], rng)
    elif r < 0.55:  # tonal household sound (music, birds, bells, phone, whistling) over room noise
        bed = negatives.confuser(W, rng) + synth.random_background(W, rng) * 10 ** (-rng.uniform(10, 40) / 20)
    elif r < 0.75:
        bed = synth.random_background(W, rng)
    else:
        bed = crop(pools["speech"][rng.integers(len(pools["speech"]))], rng)
        bed = bed + synth.random_background(W, rng) * synth.rms(bed) * 10 ** (-rng.uniform(5, 30) / 20)
        has_speech = synth.rms(bed) > 0
    if synth.rms(bed) < 1e-5:
        bed = synth.random_background(W, rng)
    return bed.astype(np.float32), has_speech


def channel(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        x = synth.cheap_mic(x, rng)
    if rng.random() < 0.5:
        x = synth.random_eq(x, rng)
    return synth.set_level(x, rng.uniform(-50, -8))


def event_window(label: str, pools: dict, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    real = pools["events"].get(label, [])
    if real and rng.random() < REAL_SHARE.get(label, 0.0):
        x = real[rng.integers(len(real))]
        x = speed(x, rng.uniform(0.85, 1.18))
        ev = crop(x, rng, loud=True)
    else:
        ev = synth.SYNTH_EVENTS[label](W, rng)
    if rng.random() < 0.6:
        ev = synth.reverb(ev, rng)
    bed, has_speech = background_bed(pools, rng)
    if rng.random() < 0.1:
        mix = ev + 1e-3 * bed * synth.rms(ev) / (synth.rms(bed) + 1e-9)
    else:
        mix = synth.mix_at_snr(ev, bed, rng.uniform(-3, 30))
    return channel(mix, rng), has_speech


def negative_window(kind: str, pools: dict, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    if kind == "speech":
        sp = crop(pools["speech"][rng.integers(len(pools["speech"]))], rng, loud=True)
        if rng.random() < 0.5:
            sp = synth.reverb(sp, rng)
        bg = pools["background"][rng.integers(len(pools["background"]))] if pools["background"] else None
        bed = crop(bg, rng) if bg is not None and rng.random() < 0.5 else synth.random_background(W, rng)
        if synth.rms(bed) < 1e-5:
            bed = synth.random_background(W, rng)
        return channel(synth.mix_at_snr(sp, bed, rng.uniform(0, 30)), rng), True
    bed, has_speech = background_bed(pools, rng)
    r = rng.random()
    if r < 0.25:  # a hard negative: the tonal sounds the first models mistook for alarms and sirens
        bed = synth.mix_at_snr(negatives.confuser(W, rng), bed, rng.uniform(0, 30))
    elif r < 0.5 and pools["background"]:  # two real sounds on top of each other
        other = crop(pools["background"][rng.integers(len(pools["background"]))], rng)
        if synth.rms(other) > 1e-5:
            bed = synth.mix_at_snr(other, bed, rng.uniform(-5, 15))
    if rng.random() < 0.4:
        bed = synth.reverb(bed, rng)
    return channel(bed, rng), has_speech


def _make(task: tuple[str, np.random.SeedSequence]) -> tuple[np.ndarray, np.ndarray]:
    kind, seq = task
    rng = np.random.default_rng(seq)
    pools = _POOL["pools"]
    if kind in PRODUCT:
        x, has_speech = event_window(kind, pools, rng)
    else:
        x, has_speech = negative_window(kind, pools, rng)
    y = np.zeros(len(LABELS), np.float32)
    y[LABELS.index(kind if kind in PRODUCT else "background")] = 1.0
    if has_speech:
        y[LABELS.index("speech")] = 1.0
    return x, y


def _init(pools: dict) -> None:
    _POOL["pools"] = pools
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def make_windows(pools: dict, counts: dict[str, int], seed: int, workers: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """counts: {label or "background"/"speech": number of windows}. Returns (X [n, W], Y [n, L])."""
    kinds = [k for k in sorted(counts) for _ in range(counts[k])]
    seqs = np.random.SeedSequence(seed).spawn(len(kinds))
    tasks = list(zip(kinds, seqs))
    if workers > 1:
        with mp.get_context("fork").Pool(workers, initializer=_init, initargs=(pools,)) as pool:
            out = pool.map(_make, tasks, chunksize=64)
    else:
        _init(pools)
        out = [_make(t) for t in tasks]
    X = np.stack([o[0] for o in out]).astype(np.float32)
    Y = np.stack([o[1] for o in out]).astype(np.float32)
    return X, Y
