"""Reproduce the shipped audio-event model from a fixed seed: ``python models/audio_events/train.py``.

Steps: check + collect the real clips (sources.py), espeak-ng speech, seeded windows (dataset.py),
features through the ONNX front end (features.py), train the classifier (PyTorch CPU, deterministic),
export + merge + verify (build.py), thresholds for a false-event budget on the VALIDATION split's
calibration stream (calibrate.py), write
``audio_events.onnx``, the manifest entry in ``models/manifest.json`` and ``DATA.md``.
Needs the ``[train]`` extra (torch==2.13.0 CPU, onnx, onnxruntime, av, numpy) and the Debian sound packages.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402

import build  # noqa: E402
import calibrate  # noqa: E402
import dataset  # noqa: E402
import features  # noqa: E402
import sources  # noqa: E402
import synth  # noqa: E402

SEED = 20261129
# torch threads: one, so that a shared 2-core machine does not make two OpenMP threads spin for one core
# (an epoch went from ~1 to 7.5 minutes that way); the result is reproducible for a given thread count
THREADS = 1
VERSION = "1.2.0"
MODEL_FILE = HERE / "audio_events.onnx"
MANIFEST = HERE.parent / "manifest.json"
# Hard-negative mining after the main training: this many fresh training negatives are scored, the
# top MINE_KEEP by their highest product-label score join the training set for FINE_TUNE_EPOCHS more.
MINE_CANDIDATES = {"background": 24000, "speech": 6000}
MINE_KEEP = 4000
FINE_TUNE_EPOCHS = 4
TRAIN_COUNTS = {**{label: 2000 for label in dataset.PRODUCT}, "background": 14000, "speech": 2500}
# seconds of synthetic household confusers appended to the validation clips for threshold calibration
CALIBRATION_CONFUSER_S = 2400.0
VAL_COUNTS = {**{label: 400 for label in dataset.PRODUCT}, "background": 4000, "speech": 600}
# Seconds a label must be heard before the runtime starts an event (manifest defaults; the config can
# override). With the 0.4875 s hop, 0.5 s means two windows in a row, 0.9 s two, 1.4 s three.
# Chosen from how the sounds behave, not tuned on any test clip: a smoke alarm sounds for minutes but
# must be decided within about a second of onset (two windows); sirens and crying go on for many
# seconds (three); a bark or a scream is short but rarely alone (two); glass breaks once, in well
# under a second, so one window must do.
MIN_DURATION_S = {"smoke_co_alarm": 0.9, "siren": 1.4, "baby_cry": 1.4, "scream": 0.5, "dog_bark": 0.5,
                  "glass_break": 0.0}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def spec_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One time mask (<= 12 frames) and one frequency mask (<= 8 bands) per example, filled with the mean."""
    n, t, f = x.shape
    x = x.clone()
    t0 = torch.randint(0, t, (n,), generator=gen)
    tw = torch.randint(0, 13, (n,), generator=gen)
    f0 = torch.randint(0, f, (n,), generator=gen)
    fw = torch.randint(0, 9, (n,), generator=gen)
    ti = torch.arange(t).unsqueeze(0)
    fi = torch.arange(f).unsqueeze(0)
    tmask = (ti >= t0.unsqueeze(1)) & (ti < (t0 + tw).unsqueeze(1))
    fmask = (fi >= f0.unsqueeze(1)) & (fi < (f0 + fw).unsqueeze(1))
    fill = x.mean(dim=(1, 2), keepdim=True).expand_as(x)
    mask = tmask.unsqueeze(2) | fmask.unsqueeze(1)
    return torch.where(mask, fill, x)


def train_classifier(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray, yva: np.ndarray,
                     epochs: int, model: build.AudioEventNet | None = None,
                     max_lr: float = 3e-3) -> build.AudioEventNet:
    """Train a new classifier, or go on training ``model`` (its input normalisation is kept)."""
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(THREADS)
    torch.set_flush_denormal(True)  # tiny activations late in training otherwise slow the CPU a lot
    if model is None:
        mean, std = xtr.mean(axis=(0, 1)), xtr.std(axis=(0, 1)) + 1e-3
        model = build.AudioEventNet(len(dataset.LABELS), mean, std)
    opt = torch.optim.AdamW(model.parameters(), lr=max_lr, weight_decay=1e-3)
    steps_per_epoch = (len(xtr) + 127) // 128
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=epochs * steps_per_epoch,
                                                pct_start=0.15)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(SEED)
    X, Y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(X), generator=gen)
        total = 0.0
        for i in range(0, len(X), 128):
            idx = order[i:i + 128]
            xb = spec_augment(X[idx], gen)
            loss = loss_fn(model.logits(xb), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        val = predict(model, xva)
        vloss = float(loss_fn(torch.logit(torch.from_numpy(val).clamp(1e-6, 1 - 1e-6)), torch.from_numpy(yva)))
        log(f"epoch {epoch + 1}/{epochs}: train loss {total / len(X):.4f}, val loss {vloss:.4f}")
    model.eval()
    return model


def predict(model: build.AudioEventNet, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i:i + 512])).numpy() for i in range(0, len(x), 512)])


def mine_hard_negatives(model: build.AudioEventNet, pools: dict, fe: features.FrontEnd, workers: int,
                        scale: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Score many fresh TRAINING negative windows and keep the ones the model likes most for a product
    label: false alarms come from the tail of the background, which random windows rarely sample."""
    counts = {k: max(1, int(v * scale)) for k, v in MINE_CANDIDATES.items()}
    X, Y = dataset.make_windows(pools, counts, SEED + 300, workers=workers)
    F = fe(X)
    del X
    s = predict(model, F)[:, [dataset.LABELS.index(p) for p in dataset.PRODUCT]].max(axis=1)
    keep = np.sort(np.argsort(s)[-max(1, int(MINE_KEEP * scale)):])
    stats = {"candidates": len(F), "kept": len(keep), "min_kept_score": round(float(s[keep].min()), 4),
             "candidates_above_0.5": int(np.sum(s >= 0.5))}
    return F[keep], Y[keep], stats


def window_metrics(scores: np.ndarray, y: np.ndarray, thresholds: dict[str, float]) -> dict[str, dict]:
    """Per product label, on the VALIDATION windows at the calibrated threshold: F1, recall, false positive
    windows, background-only windows above (for the report; the thresholds come from calibrate.py)."""
    out = {}
    neg_all = y[:, [dataset.LABELS.index(p) for p in dataset.PRODUCT]].sum(axis=1) == 0
    for label in dataset.PRODUCT:
        j = dataset.LABELS.index(label)
        s, t, thr = scores[:, j], y[:, j] > 0.5, thresholds[label]
        tp, fp, fn = np.sum(s[t] >= thr), np.sum(s[~t] >= thr), np.sum(s[t] < thr)
        out[label] = {"val_f1": round(float(2 * tp / max(1, 2 * tp + fp + fn)), 4),
                      "val_recall": round(float(tp / max(1, t.sum())), 4), "val_false_positive_windows": int(fp),
                      "val_background_windows_above": int(np.sum(s[neg_all] >= thr)),
                      "val_background_windows": int(neg_all.sum())}
    return out


def calibrate_thresholds(merged: onnx.ModelProto, val_pools: dict) -> tuple[dict[str, dict], dict]:
    """Thresholds for the false-event budget on the calibration stream (calibrate.py), scored by the merged
    ONNX model itself, as the hub runs it."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(merged.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(SEED + 500)
    clips = list(val_pools["background"]) + list(val_pools["speech"])
    x = calibrate.stream(clips, CALIBRATION_CONFUSER_S, rng)
    hours = len(x) / features.SAMPLE_RATE / 3600
    scores = calibrate.window_scores(x, lambda w: sess.run(None, {"waveform": w})[0], features.WINDOW_SAMPLES,
                                     len(dataset.LABELS))
    thresholds = calibrate.calibrate(scores, dataset.LABELS, dataset.PRODUCT, MIN_DURATION_S, hours)
    info = {"hours": round(hours, 3), "real_clips": len(clips), "confuser_seconds": CALIBRATION_CONFUSER_S,
            "windows": len(scores), "safety": calibrate.SAFETY, "budget_per_hour": calibrate.BUDGET_PER_HOUR,
            "threshold_range": calibrate.THRESHOLD_RANGE}
    return thresholds, info


def write_data_md(clips: list[sources.Clip], n_espeak: dict[str, int], out_dir: Path) -> None:
    lines = ["# Audio-event model: every source file", "",
             "Generated by `train.py`. Clips are read from the installed Debian packages (see MODEL_CARD.md).",
             "`container!member` paths are files inside 0 A.D.'s `public.zip` or GCompris' Qt `.rcc` resources.",
             "Licences are read from each package's machine-readable `/usr/share/doc/<pkg>/copyright`.", "",
             f"Plus espeak-ng synthetic speech (label `speech`): {n_espeak['train']} train / {n_espeak['val']} val "
             "utterances generated with seeds from `train.py`.", "",
             "| split | label | package | version | licence | path |", "|---|---|---|---|---|---|"]
    order = {"train": 0, "val": 1, "test": 2}
    for c in sorted(clips, key=lambda c: (order[c.split], c.label, c.package, c.path)):
        lines.append(f"| {c.split} | {c.label} | {c.package} | {c.version} | {c.licence} | `{c.path}` |")
    (out_dir / "DATA.md").write_text("\n".join(lines) + "\n")


def write_manifest(sha: str, thresholds: dict[str, float], path: Path) -> dict:
    manifest = json.loads(path.read_text()) if path.exists() else {"models": {}}
    entry = {
        "file": "audio_events/audio_events.onnx", "version": VERSION, "sha256": sha, "kind": "audio_events",
        "labels": dataset.LABELS, "product_labels": dataset.PRODUCT, "sample_rate": features.SAMPLE_RATE,
        "window_samples": features.WINDOW_SAMPLES, "input": "waveform", "output": "scores",
        "activation": build.ACTIVATION, "opset": features.OPSET,
        "inputs": {"waveform": {"dtype": "float32", "shape": ["N", features.WINDOW_SAMPLES]}},
        "outputs": {"scores": {"dtype": "float32", "shape": ["N", len(dataset.LABELS)]}},
        "thresholds": {label: thresholds[label] for label in dataset.PRODUCT},
        "min_duration_s": {label: MIN_DURATION_S[label] for label in dataset.PRODUCT},
    }
    manifest.setdefault("models", {})["audio_events"] = entry
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply window counts (quick runs: 0.1)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="write model, manifest, DATA.md there instead of the repository (trial runs)")
    ap.add_argument("--recalibrate", type=Path, default=None, metavar="ONNX",
                    help="only calibrate an existing model's thresholds and print them (no training)")
    args = ap.parse_args()
    t0 = time.time()
    clips = sources.check()
    if args.recalibrate:
        val = dataset.load_pools(clips, "val", dataset.espeak_audio(SEED + 1, 60))
        thr, info = calibrate_thresholds(onnx.load(args.recalibrate), val)
        print(json.dumps({"calibration": info, "thresholds": thr}, indent=2))
        return
    log(f"{len(clips)} real clips ({sum(c.split == 'test' for c in clips)} held out for evaluate.py)")
    n_espeak = {"train": 240, "val": 60}
    pools = {split: dataset.load_pools(clips, split, dataset.espeak_audio(SEED + i, n_espeak[split]))
             for i, split in enumerate(("train", "val"))}
    log("decoded: " + ", ".join(f"{s}: {len(p['background'])} background, {len(p['speech'])} speech, "
                                f"{ {k: len(v) for k, v in p['events'].items()} }" for s, p in pools.items()))
    counts = {s: {k: max(1, int(v * args.scale)) for k, v in c.items()}
              for s, c in (("train", TRAIN_COUNTS), ("val", VAL_COUNTS))}
    fe = features.FrontEnd(threads=2)
    data = {}
    for i, split in enumerate(("train", "val")):
        X, Y = dataset.make_windows(pools[split], counts[split], SEED + 100 + i, workers=args.workers)
        data[split] = (fe(X), Y)
        log(f"{split}: {len(X)} windows -> features {data[split][0].shape}")
        if split == "val":
            probe = X[:: max(1, len(X) // 64)][:64]
        del X
    model = train_classifier(*data["train"], *data["val"], epochs=args.epochs)
    hard_x, hard_y, mined = mine_hard_negatives(model, pools["train"], fe, args.workers, args.scale)
    log(f"hard negatives: {mined}")
    model = train_classifier(np.concatenate([data["train"][0], hard_x]), np.concatenate([data["train"][1], hard_y]),
                             *data["val"], epochs=FINE_TUNE_EPOCHS, model=model, max_lr=1e-3)
    del hard_x
    merged = build.merge(build.export_classifier(model), dataset.LABELS)
    err = build.verify(merged, model, probe)
    log(f"merged ONNX == torch on {len(probe)} validation windows (max |diff| {err:.2e})")
    calibration, cal_info = calibrate_thresholds(merged, pools["val"])
    thresholds = {label: c["threshold"] for label, c in calibration.items()}
    val_metrics = window_metrics(predict(model, data["val"][0]), data["val"][1], thresholds)
    log(f"calibration stream: {cal_info}")
    for label, c in calibration.items():
        log(f"threshold {label:15s} {c} {val_metrics[label]}")
    out_dir = args.out_dir or HERE
    # a trial directory mirrors models/: manifest.json beside audio_events/audio_events.onnx
    model_file = out_dir / "audio_events" / MODEL_FILE.name if args.out_dir else MODEL_FILE
    model_file.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(merged, model_file)
    sha = hashlib.sha256(model_file.read_bytes()).hexdigest()
    write_manifest(sha, thresholds, out_dir / "manifest.json" if args.out_dir else MANIFEST)
    write_data_md(clips, n_espeak, out_dir)
    (out_dir / "train_report.json").write_text(json.dumps(
        {"seed": SEED, "torch_threads": THREADS, "epochs": args.epochs, "fine_tune_epochs": FINE_TUNE_EPOCHS,
         "hard_negatives": mined,
         "counts": counts, "thresholds": thresholds, "calibration": {"stream": cal_info, "labels": calibration},
         "validation_windows": val_metrics, "sha256": sha,
         "bytes": model_file.stat().st_size, "seconds": round(time.time() - t0, 1),
         "synth_kinds": sorted(synth.SYNTH_EVENTS)}, indent=2) + "\n")
    log(f"wrote {model_file} ({model_file.stat().st_size / 1e3:.0f} kB, sha256 {sha[:12]}) in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
