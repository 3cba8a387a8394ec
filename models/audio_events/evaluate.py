"""Evaluate the shipped audio-event model on held-out REAL clips: ``python models/audio_events/evaluate.py``.

Needs the runtime (the ``edge_media`` package, numpy, onnxruntime, av) plus the Debian sound packages
(sources.py). It measures what a hub does, with the runtime's own parts: ``AudioEventModel`` (manifest,
sha256), ``AudioWindower`` (0.975 s windows every 0.4875 s, the -60 dBFS silence gate) and
``AudioEventLogic`` (per-label thresholds, minimum durations and hysteresis from the manifest).

* Test set: every clip whose split is ``test`` (held-out packages, see sources.py) - never seen in
  training, threshold selection or the choice of minimum durations.
* Each clip is played alone into a fresh detector, between 1 s of quiet room noise before and 3 s
  after (below the silence gate, as in a quiet room). A clip is *detected* as a label when the event
  logic starts an event of that label.
* Per product label: precision, recall, F1 over all test clips, clean and mixed at 10 dB SNR with a
  held-out background clip.
* False alarms: every event started during a background or speech clip, per hour / 24 h of that
  audio, with the 95 % upper confidence bound (Poisson) - 1.8 h of audio cannot show 1 per 24 h.
* Two rows per condition: ``runtime`` (the manifest's minimum durations and hysteresis) and
  ``one window`` (any single window above threshold starts an event: the raw model).
* Labels with few or no real test clips also get a SYNTHETIC check, reported apart.
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

from edge_media.audio.model import AudioEventModel  # noqa: E402
from edge_media.audio.setup import min_durations, new_logic, new_windower  # noqa: E402
from edge_media.config import AudioConfig  # noqa: E402

import sources  # noqa: E402
import synth  # noqa: E402
from bounds import poisson_bounds  # noqa: E402

SR = 16000
LEAD_S, TAIL_S = 1.0, 3.0
EVAL_SEED = 777
RUNTIME = AudioConfig()  # the service's defaults: hop, silence gate, hysteresis, end_after_s
RAW = AudioConfig(min_duration_s=0.0, hysteresis=0.0)  # any one window above threshold is an event


def load_model(manifest_path: Path) -> AudioEventModel:
    return AudioEventModel.from_manifest("audio_events", manifest_path.parent)


def scan(model: AudioEventModel, x: np.ndarray, rng: np.random.Generator) -> tuple[list[float], list, list]:
    """Window times, scores (None where the silence gate skipped the model) and samples (the verifiers
    hear them) for x in a quiet room."""
    lead, tail = int(LEAD_S * SR), int(TAIL_S * SR)
    y = synth.colored_noise(len(x) + lead + tail, rng, 1.0) * 10 ** (-65 / 20)
    y[lead:lead + len(x)] += x
    ws = new_windower(model, RUNTIME).push(y.astype(np.float32), 0.0)
    loud = [w.samples for w in ws if not w.silent]
    scores = iter(np.concatenate([model.predict(np.stack(loud[i:i + 64])) for i in range(0, len(loud), 64)])
                  if loud else ())
    return [w.time for w in ws], [None if w.silent else next(scores) for w in ws], [w.samples for w in ws]


def event_starts(model: AudioEventModel, times: list[float], scores: list, samples: list, raw: bool) -> list[str]:
    """Labels of the events the runtime logic starts (raw: one window above threshold suffices). The
    windows' samples go in too: without them the alarm verifier hears nothing and never confirms."""
    logic = new_logic("eval", model, RAW if raw else RUNTIME)  # the service builds its logic the same way
    return [tr.event.label for t, s, w in zip(times, scores, samples) for tr in logic.update(t, s, w)
            if tr.kind == "start"]


def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fn else float("nan")
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4), "tp": tp, "fp": fp, "fn": fn}


def scan_all(model, clips, audio, rng, backgrounds=None, snr_db: float = 10.0) -> list:
    out = []
    for c, x in zip(clips, audio):
        if backgrounds is not None and c.label in model.labels:
            bg = backgrounds[rng.integers(len(backgrounds))]
            bg = np.resize(bg, len(x)) if len(bg) < len(x) else bg[: len(x)]
            if synth.rms(bg) > 1e-5:
                x = synth.mix_at_snr(x, bg, snr_db)
        out.append(scan(model, x, rng))
    return out


def evaluate_clips(model: AudioEventModel, clips, audio, scans, raw: bool) -> dict:
    product = model.labels
    detected, fa_counts, bg_seconds, any_fa = [], {p: 0 for p in product}, 0.0, 0
    false_alarms, misses = [], []
    for c, x, (times, scores, samples) in zip(clips, audio, scans):
        started = event_starts(model, times, scores, samples, raw)
        detected.append(set(started))
        if c.label in ("background", "speech"):
            bg_seconds += len(x) / SR
            for label in started:
                fa_counts[label] += 1
                false_alarms.append({"label": label, "clip": c.path, "package": c.package})
            any_fa += len(started)
        elif c.label in product:
            wrong = sorted(set(started) - {c.label})
            if c.label not in started or wrong:
                misses.append({"label": c.label, "clip": c.path, "detected": c.label in started, "also": wrong})
    hours = bg_seconds / 3600
    per_label = {}
    for p in product:
        tp = sum(1 for c, d in zip(clips, detected) if c.label == p and p in d)
        fn = sum(1 for c, d in zip(clips, detected) if c.label == p and p not in d)
        fp = sum(1 for c, d in zip(clips, detected) if c.label != p and p in d)
        per_label[p] = {**prf(tp, fp, fn), "positives": tp + fn, "false_alarms": fa_counts[p],
                        "false_alarms_per_hour": round(fa_counts[p] / hours, 3),
                        "false_alarms_per_24h": round(24 * fa_counts[p] / hours, 1),
                        "false_alarms_per_24h_upper95": round(24 * poisson_bounds(fa_counts[p])[1] / hours, 1)}
    pos = [(c, d) for c, d in zip(clips, detected) if c.label in product]
    return {"per_label": per_label, "background_hours": round(hours, 4),
            "any_label_false_alarms_per_hour": round(any_fa / hours, 3),
            "any_label_false_alarms_per_24h": round(24 * any_fa / hours, 2),
            "any_event_recall": round(sum(c.label in d for c, d in pos) / max(1, len(pos)), 4),
            "clips": len(clips), "event_clips": len(pos), "false_alarm_clips": false_alarms,
            "missed_or_confused_event_clips": misses,
            "logic": "one window above threshold" if raw else
                     f"runtime: min durations {min_durations(model, RUNTIME)}, hysteresis {RUNTIME.hysteresis}"}


def synthetic_check(model: AudioEventModel, backgrounds, rng, count: int = 100, seconds: float = 6.0) -> dict:
    """SYNTHETIC events (other seeds than training) of ``seconds`` over held-out real backgrounds at
    0-20 dB SNR, through the runtime logic: the only recall estimate for labels without real clips."""
    n = int(seconds * SR)
    out = {}
    for label in ("smoke_co_alarm", "baby_cry", "siren", "glass_break"):
        hits = 0
        for _ in range(count):
            ev = synth.SYNTH_EVENTS[label](n, rng)
            if rng.random() < 0.5:
                ev = synth.reverb(ev, rng)
            bg = backgrounds[rng.integers(len(backgrounds))]
            bed = bg[:n] if len(bg) >= n else np.resize(bg, n)
            if synth.rms(bed) < 1e-5:
                bed = synth.colored_noise(n, rng, 1.0)
            x = synth.set_level(synth.mix_at_snr(ev, bed, rng.uniform(0, 20)), rng.uniform(-40, -12))
            hits += label in event_starts(model, *scan(model, x, rng), raw=False)
        out[label] = {"recall": round(hits / count, 4), "events": count, "seconds": seconds, "snr_db": "0-20",
                      "note": "SYNTHETIC, not real recordings"}
    return out


def timing(model: AudioEventModel) -> float:
    x = np.random.default_rng(0).standard_normal((1, model.info.window_samples)).astype(np.float32) * 0.1
    for _ in range(20):
        model.predict(x)
    t = time.perf_counter()
    for _ in range(300):
        model.predict(x)
    return (time.perf_counter() - t) / 300 * 1e3


def print_table(name: str, res: dict) -> None:
    print(f"\n{name}: {res['clips']} real clips ({res['event_clips']} event clips), "
          f"{res['background_hours'] * 60:.1f} min of background/speech; {res['logic']}")
    print(f"{'label':15s} {'pos':>4s} {'P':>6s} {'R':>6s} {'F1':>6s} {'FA':>4s} {'FA/24h':>7s} {'<=95%':>7s}")
    for label, m in res["per_label"].items():
        print(f"{label:15s} {m['positives']:4d} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} "
              f"{m['false_alarms']:4d} {m['false_alarms_per_24h']:7.1f} {m['false_alarms_per_24h_upper95']:7.1f}")
    print(f"any product label: FA/24h {res['any_label_false_alarms_per_24h']:.1f}, "
          f"event recall {res['any_event_recall']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--manifest", type=Path, default=HERE.parent / "manifest.json")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--home", action="store_true",
                    help="the issue's table: held-out home-like pool, event-level recall, with/without verifiers")
    ap.add_argument("--events", type=int, default=100, help="--home: synthetic events per label")
    ap.add_argument("--pool-cache", type=Path, default=None,
                    help="--home: keep the decoded home-like pool in this file for the next run")
    args = ap.parse_args()
    model = load_model(args.manifest)
    if args.home:
        import home_eval

        res = home_eval.evaluate_home(model, EVAL_SEED + 10, args.events, args.pool_cache)
        res.update({"version": model.version, "sha256": model.info.sha256,
                    "ms_per_window_1_thread": round(timing(model), 3)})
        home_eval.print_home(res)
        out = args.out or HERE / "eval_home.json"
        out.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {out}")
        return
    args.out = args.out or HERE / "eval.json"
    clips = [c for c in sources.check() if c.split == "test"]
    audio = [sources.load_audio(c.path, c.max_seconds) for c in clips]
    keep = [i for i, x in enumerate(audio) if x.size >= 400]
    clips, audio = [clips[i] for i in keep], [audio[i] for i in keep]
    backgrounds = [x for c, x in zip(clips, audio) if c.label == "background" and x.size >= SR]
    clean_scans = scan_all(model, clips, audio, np.random.default_rng(EVAL_SEED))
    noisy_scans = scan_all(model, clips, audio, np.random.default_rng(EVAL_SEED + 1), backgrounds)
    results = {name: evaluate_clips(model, clips, audio, scans, raw)
               for name, scans, raw in (("real_clean_runtime", clean_scans, False),
                                        ("real_clean_one_window", clean_scans, True),
                                        ("real_mixed_10db_runtime", noisy_scans, False),
                                        ("real_mixed_10db_one_window", noisy_scans, True))}
    synthetic = synthetic_check(model, backgrounds, np.random.default_rng(EVAL_SEED + 2))
    ms = timing(model)
    hop_s = RUNTIME.hop_s
    result = {"model": str(model.info.path.relative_to(args.manifest.parent)), "version": model.version,
              "sha256": model.info.sha256, "thresholds": dict(model.info.thresholds),
              "min_duration_s": min_durations(model, RUNTIME), "hop_s": hop_s, **results,
              "synthetic_heldout": synthetic, "ms_per_window_1_thread": round(ms, 3),
              "real_time_factor_1_thread_at_hop": round(ms / 1000 / hop_s, 5),
              "model_bytes": model.info.path.stat().st_size,
              "test_clips_per_label": {label: sum(c.label == label for c in clips)
                                       for label in sorted({c.label for c in clips})},
              "test_packages": sorted({c.package for c in clips})}
    for name, res in results.items():
        print_table(name, res)
    print("\nSYNTHETIC held-out events through the runtime logic:")
    for label, m in synthetic.items():
        print(f"  {label:15s} recall {m['recall']:.3f} on {m['events']} events")
    print(f"\n{ms:.3f} ms per window on one thread (RTF {result['real_time_factor_1_thread_at_hop']} at a "
          f"{hop_s} s hop), model {result['model_bytes'] / 1e3:.0f} kB")
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
