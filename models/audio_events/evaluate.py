"""Evaluate the shipped audio-event model on held-out REAL clips: ``python models/audio_events/evaluate.py``.

Needs only the runtime deps (numpy, onnxruntime, av) plus the Debian sound packages (sources.py).

* Test set: every clip whose split is ``test`` (held-out packages, see sources.py) - never seen in
  training or threshold selection.
* Each clip is padded with 0.5 s of quiet room noise on both sides and scanned with 0.975 s windows
  every 0.25 s; a clip is *detected* as a label when any window scores >= the manifest threshold.
* Per product label: precision, recall, F1 over all test clips (clean, and mixed at 10 dB SNR with a
  held-out background clip).
* False alarms per hour: over the background + speech test clips, each run of consecutive windows
  above threshold counts as one false alarm; divided by their total duration. Reported for a single
  window above threshold and for >= 2 consecutive windows (a 0.5 s minimum duration, as the runtime's
  event logic can require).
* Labels with no real test clip (smoke_co_alarm, baby_cry) get a SYNTHETIC check only, reported apart:
  a different seed family, mixed with held-out real backgrounds.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

import sources  # noqa: E402
import synth  # noqa: E402

SR = 16000
HOP_S = 0.25
PAD_S = 0.5
EVAL_SEED = 777


def load_model(manifest_path: Path) -> tuple[ort.InferenceSession, dict]:
    entry = json.loads(manifest_path.read_text())["models"]["audio_events"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(manifest_path.parent / entry["file"]), opts, providers=["CPUExecutionProvider"])
    return sess, entry


def windows(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    pad = int(PAD_S * SR)
    floor = synth.colored_noise(len(x) + 2 * pad, rng, 1.0) * 10 ** (-65 / 20)
    y = floor.copy()
    y[pad:pad + len(x)] += x
    if len(y) < n:
        y = np.concatenate([y, floor[: n - len(y)] if len(floor) >= n - len(y) else np.zeros(n - len(y))])
    hop = int(HOP_S * SR)
    starts = range(0, len(y) - n + 1, hop)
    return np.stack([y[s:s + n] for s in starts]).astype(np.float32)


def score(sess: ort.InferenceSession, w: np.ndarray) -> np.ndarray:
    return np.concatenate([sess.run(["scores"], {"waveform": w[i:i + 64]})[0] for i in range(0, len(w), 64)])


def onsets(above: np.ndarray, min_windows: int = 1) -> int:
    """Number of runs of >= min_windows consecutive True values (one alarm per run)."""
    count, run = 0, 0
    for a in above:
        run = run + 1 if a else 0
        if run == min_windows:
            count += 1
    return count


def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fn else float("nan")
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4), "tp": tp, "fp": fp, "fn": fn}


def evaluate_clips(sess, entry, clips, audio, rng, backgrounds=None, min_windows: int = 1,
                   cache: dict | None = None) -> dict:
    labels, product, thr = entry["labels"], entry["product_labels"], entry["thresholds"]
    n = entry["window_samples"]
    detected, fa_counts, bg_seconds = [], {p: 0 for p in product}, 0.0
    any_fa = 0
    for i, (c, x) in enumerate(zip(clips, audio)):
        if cache is not None and i in cache:
            s = cache[i]
        else:
            if backgrounds is not None and c.label in product:
                bg = backgrounds[rng.integers(len(backgrounds))]
                bg = np.resize(bg, len(x)) if len(bg) < len(x) else bg[: len(x)]
                if synth.rms(bg) > 1e-5:
                    x = synth.mix_at_snr(x, bg, 10.0)
            s = score(sess, windows(x, n, rng))
            if cache is not None:
                cache[i] = s
        detected.append({p: onsets(s[:, labels.index(p)] >= thr[p], min_windows) > 0 for p in product})
        if c.label in ("background", "speech"):
            bg_seconds += len(x) / SR
            any_above = np.zeros(len(s), bool)
            for p in product:
                above = s[:, labels.index(p)] >= thr[p]
                fa_counts[p] += onsets(above, min_windows)
                any_above |= above
            any_fa += onsets(any_above, min_windows)
    per_label = {}
    for p in product:
        tp = sum(1 for c, d in zip(clips, detected) if c.label == p and d[p])
        fn = sum(1 for c, d in zip(clips, detected) if c.label == p and not d[p])
        fp = sum(1 for c, d in zip(clips, detected) if c.label != p and d[p])
        per_label[p] = {**prf(tp, fp, fn), "positives": tp + fn,
                        "false_alarms_per_hour": round(fa_counts[p] / (bg_seconds / 3600), 3),
                        "false_alarms_per_24h": round(24 * fa_counts[p] / (bg_seconds / 3600), 1)}
    pos = [(c, d) for c, d in zip(clips, detected) if c.label in product]
    hours = bg_seconds / 3600
    return {"per_label": per_label, "background_hours": round(hours, 4),
            "any_label_false_alarms_per_hour": round(any_fa / hours, 3),
            "any_label_false_alarms_per_24h": round(24 * any_fa / hours, 2),
            "any_event_recall": round(sum(d[c.label] for c, d in pos) / max(1, len(pos)), 4),
            "clips": len(clips), "event_clips": len(pos), "min_consecutive_windows": min_windows}


def synthetic_check(sess, entry, backgrounds, rng, count: int = 200) -> dict:
    """Held-out synthetic windows for labels without real test clips (different seeds, real test beds)."""
    labels, thr, n = entry["labels"], entry["thresholds"], entry["window_samples"]
    out = {}
    for label in ("smoke_co_alarm", "baby_cry", "siren", "glass_break"):
        ws = []
        for _ in range(count):
            ev = synth.SYNTH_EVENTS[label](n, rng)
            if rng.random() < 0.5:
                ev = synth.reverb(ev, rng)
            bg = backgrounds[rng.integers(len(backgrounds))]
            bed = bg[: n] if len(bg) >= n else np.resize(bg, n)
            if synth.rms(bed) < 1e-5:
                bed = synth.colored_noise(n, rng, 1.0)
            ws.append(synth.set_level(synth.mix_at_snr(ev, bed, rng.uniform(0, 20)), rng.uniform(-40, -12)))
        s = score(sess, np.stack(ws))
        out[label] = {"recall": round(float(np.mean(s[:, labels.index(label)] >= thr[label])), 4),
                      "windows": count, "snr_db": "0-20", "note": "SYNTHETIC, not real recordings"}
    return out


def timing(sess, n: int) -> float:
    x = np.random.default_rng(0).standard_normal((1, n)).astype(np.float32) * 0.1
    for _ in range(20):
        sess.run(["scores"], {"waveform": x})
    t = time.perf_counter()
    for _ in range(300):
        sess.run(["scores"], {"waveform": x})
    return (time.perf_counter() - t) / 300 * 1e3


def print_table(name: str, res: dict) -> None:
    print(f"\n{name}: {res['clips']} real clips ({res['event_clips']} event clips), "
          f"{res['background_hours'] * 60:.1f} min of background/speech")
    print(f"{'label':15s} {'pos':>4s} {'P':>6s} {'R':>6s} {'F1':>6s} {'FA/h':>7s} {'FA/24h':>7s}")
    for label, m in res["per_label"].items():
        print(f"{label:15s} {m['positives']:4d} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} "
              f"{m['false_alarms_per_hour']:7.2f} {m['false_alarms_per_24h']:7.1f}")
    print(f"any product label: FA/h {res['any_label_false_alarms_per_hour']:.2f}, "
          f"FA/24h {res['any_label_false_alarms_per_24h']:.1f}, event recall {res['any_event_recall']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--manifest", type=Path, default=HERE.parent / "manifest.json")
    ap.add_argument("--out", type=Path, default=HERE / "eval.json")
    args = ap.parse_args()
    sess, entry = load_model(args.manifest)
    clips = [c for c in sources.check() if c.split == "test"]
    audio = [sources.load_audio(c.path, c.max_seconds) for c in clips]
    keep = [i for i, x in enumerate(audio) if x.size >= 400]
    clips, audio = [clips[i] for i in keep], [audio[i] for i in keep]
    backgrounds = [x for c, x in zip(clips, audio) if c.label == "background" and x.size >= SR]
    rng = np.random.default_rng(EVAL_SEED + 2)
    cache: dict = {}
    clean = evaluate_clips(sess, entry, clips, audio, np.random.default_rng(EVAL_SEED), cache=cache)
    clean2 = evaluate_clips(sess, entry, clips, audio, np.random.default_rng(EVAL_SEED), min_windows=2, cache=cache)
    noisy = evaluate_clips(sess, entry, clips, audio, np.random.default_rng(EVAL_SEED + 1), backgrounds=backgrounds)
    synthetic = synthetic_check(sess, entry, backgrounds, rng)
    ms = timing(sess, entry["window_samples"])
    model_path = args.manifest.parent / entry["file"]
    result = {"model": entry["file"], "version": entry["version"], "sha256": entry["sha256"],
              "thresholds": entry["thresholds"], "real_clean": clean, "real_clean_min2windows": clean2,
              "real_mixed_10db": noisy,
              "synthetic_heldout": synthetic, "ms_per_window_1_thread": round(ms, 3),
              "real_time_factor_1_thread": round(ms / 1000 / (entry["window_samples"] / SR), 5),
              "model_bytes": model_path.stat().st_size,
              "test_clips_per_label": {label: sum(c.label == label for c in clips)
                                       for label in sorted({c.label for c in clips})},
              "test_packages": sorted({c.package for c in clips})}
    print_table("REAL held-out clips, clean (one window above threshold = detection)", clean)
    print_table("REAL held-out clips, clean, >= 2 consecutive windows (0.5 s) above threshold", clean2)
    print_table("REAL held-out clips, events mixed with held-out background at 10 dB SNR", noisy)
    print("\nSYNTHETIC held-out (no real test clips for smoke_co_alarm / baby_cry):")
    for label, m in synthetic.items():
        print(f"  {label:15s} recall {m['recall']:.3f} on {m['windows']} windows")
    print(f"\n{ms:.3f} ms per window on one thread (RTF {result['real_time_factor_1_thread']}), "
          f"model {result['model_bytes'] / 1e3:.0f} kB")
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
