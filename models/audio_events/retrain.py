"""Retrain the audio-event model from the partner's feedback bucket, gate it, and publish a signed release.

    FEEDBACK_S3_ACCESS_KEY=… FEEDBACK_S3_SECRET_KEY=… python models/audio_events/retrain.py \\
        --endpoint s3.partner.example --bucket feedback --version 1.2.1 --out build/1.2.1 \\
        [--publish-dir DIR | --publish-endpoint H:P --publish-bucket B] --key release-signing.pem

1. **Feedback** through ``feedback_data.FeedbackBucket`` (retractions applied, allow-list checked): a flagged
   false alarm (``corrected`` = ``nothing``, or another label) becomes a negative for the flagged label on every
   window of the sample; a missed or relabelled event becomes a positive for its true label on the sample's
   loud windows (``finetune.feedback_targets``). Samples are split by a hash of their id: ``--slice`` % are
   held out for the gate and never trained on.
2. **Base data**: fresh windows made by the training recipe (``--base real``: ``dataset.py`` over the TRAINING
   split of the Debian packages, as ``train.py``; ``--base synth``: synthesis only, for machines without the
   packages), all hard-labelled, so a correction cannot quietly unlearn what the base model knew.
3. **Fine-tune** the model's final dense head on the frozen embeddings (``finetune.fit_head``: numpy, fixed
   seed, bit-identical runs; minutes on 2 cores), thresholds and minimum durations kept from the parent.
4. **Gate** (``gate``): per product label on the fixed held-out REAL set (``--heldout test-split``: every
   test-split clip of ``sources.py``, as ``evaluate.py``; ``--heldout samples``: the shipped sample clips),
   the new model is worse if its recall falls below the parent's 95 % Clopper-Pearson lower bound (the clips
   alone, and laid over held-out backgrounds at 10 dB) or its false events per hour rise above the parent's
   95 % Poisson upper bound; on the held-out feedback slice it must make
   strictly fewer errors (a flagged label still raised, a reported event still missed). Refused: nothing is
   published, the reasons are printed and written (exit 3).
5. **Release**: ``audio_events-<version>.onnx`` and its manifest (labels, thresholds, durations, sha256, the
   gate's verdict and every figure, the training data summary, the parent version, ``rollout_percent``) in
   ``--out``; with a key and a target, signed and published (``publish.py``).
Needs the runtime (edge_media) and onnx; no torch.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402

from edge_media.audio.model import AudioEventModel  # noqa: E402
from edge_media.rollout.release import ReleaseManifest, model_file_name, parse_version  # noqa: E402

import dataset  # noqa: E402
import evaluate  # noqa: E402
import finetune  # noqa: E402
import synth  # noqa: E402
from bounds import binomial_bounds, poisson_bounds  # noqa: E402
from feedback_data import FeedbackBucket, FeedbackSample  # noqa: E402

SEED = 20261201
NAME = "audio_events"
SR = 16000
W = 15600
BASE_COUNTS = {**{label: 150 for label in dataset.PRODUCT}, "background": 1500, "speech": 300}
# The shipped sample clips as a (tiny) held-out real set, for machines without the Debian packages.
SAMPLE_LABELS = {"dog_bark_tuxpaint.ogg": "dog_bark", "glass_icecrash_supertux.ogg": "glass_break",
                 "scream_wilhelm_supertuxkart.ogg": "scream", "siren_firetruck_tuxpaint.flac": "siren",
                 "smoke_alarm_t3_synthetic.ogg": "smoke_co_alarm",
                 "background_alarm_clock_freedesktop.oga": "background", "quiet_room_synthetic.ogg": "background"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- feedback -------------------------------------------------------------------------------------------

def _slice_position(sample_id: str) -> int:
    return int(hashlib.sha256(sample_id.encode()).hexdigest()[:8], 16) % 10000


def heldout_slice(sample_id: str, percent: float) -> bool:
    """Deterministic by id: the same sample is in the same part on every run and every machine."""
    return _slice_position(sample_id) < percent * 100


def split_feedback(items: list[Labelled], percent: float) -> tuple[list[Labelled], list[Labelled]]:
    """(to train on, held out). A small set can draw an empty slice, and then the gate cannot show the new model
    is better: with two or more samples the one nearest the slice is held out instead."""
    held = [i for i in items if heldout_slice(i.sample_id, percent)]
    if not held and len(items) >= 2 and percent > 0:
        held = [min(items, key=lambda i: _slice_position(i.sample_id))]
    return [i for i in items if i not in held], held


@dataclass(frozen=True)
class Labelled:
    sample_id: str
    item: finetune.FeedbackItem


def labelled(samples: list[FeedbackSample]) -> list[Labelled]:
    """Samples with an owner's word (unflagged product-improvement audio carries no label)."""
    return [Labelled(s.sample_id, finetune.FeedbackItem(s.load(), s.predicted, s.corrected))
            for s in samples if s.corrected is not None]


def feedback_arrays(items: list[Labelled], embedder: finetune.Embedder, labels: list[str], product: list[str]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    es, ys, ws = [], [], []
    for lab in items:
        windows = finetune.audio_windows(lab.item.audio)
        if len(windows) == 0:
            continue
        emb, scores = embedder(windows)
        y, wt = finetune.feedback_targets(lab.item, windows, scores, labels, product)
        es.append(emb), ys.append(y), ws.append(wt)
    if not es:
        return np.zeros((0, 0), np.float32), np.zeros((0, len(labels)), np.float32), np.zeros((0, len(labels)))
    return np.concatenate(es), np.concatenate(ys), np.concatenate(ws)


# -- base data ------------------------------------------------------------------------------------------

def synthetic_windows(counts: dict[str, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training recipe's synthesis alone (events over synthetic rooms and household confusers)."""
    import negatives

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for kind in sorted(counts):
        for _ in range(counts[kind]):
            bed = synth.random_background(W, rng)
            if rng.random() < 0.4:
                bed = negatives.confuser(W, rng) + bed * 10 ** (-rng.uniform(10, 40) / 20)
            y = np.zeros(len(dataset.LABELS), np.float32)
            if kind in dataset.PRODUCT:
                ev = synth.SYNTH_EVENTS[kind](W, rng)
                if rng.random() < 0.5:
                    ev = synth.reverb(ev, rng)
                x = synth.mix_at_snr(ev, bed, rng.uniform(0, 30))
                y[dataset.LABELS.index(kind)] = 1.0
            else:
                x = bed
                y[dataset.LABELS.index("background")] = 1.0
            xs.append(dataset.channel(x, rng))
            ys.append(y)
    return np.stack(xs).astype(np.float32), np.stack(ys)


def base_windows(kind: str, scale: float, seed: int, workers: int) -> tuple[np.ndarray, np.ndarray, dict]:
    counts = {k: max(1, int(v * scale)) for k, v in BASE_COUNTS.items()}
    if kind == "synth":
        counts.pop("speech")  # speech needs espeak-ng; synthetic rooms only
        x, y = synthetic_windows(counts, seed)
        return x, y, {"kind": "synthetic (synth.py, negatives.py)", "windows": counts}
    import sources

    clips = sources.check()
    pools = dataset.load_pools(clips, "train", dataset.espeak_audio(seed, 40))
    x, y = dataset.make_windows(pools, counts, seed, workers=workers)
    return x, y, {"kind": "training recipe over the TRAINING split (dataset.py, sources.py)", "windows": counts}


# -- held-out real set ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Clip:  # what evaluate.evaluate_clips reads of sources.Clip
    label: str
    path: str
    package: str


def heldout_set(kind: str) -> tuple[list[Any], list[np.ndarray], str]:
    if kind == "samples":
        from edge_media.rollout.smoke import samples_dir

        clips = [Clip(label, str(samples_dir() / f), "samples") for f, label in sorted(SAMPLE_LABELS.items())]
        import sources

        audio = [sources.load_audio(c.path) for c in clips]
        return clips, audio, "the shipped sample clips (models/audio_events/samples)"
    import sources

    clips = [c for c in sources.check() if c.split == "test"]
    audio = [sources.load_audio(c.path, c.max_seconds) for c in clips]
    keep = [i for i, x in enumerate(audio) if x.size >= 400]
    return ([clips[i] for i in keep], [audio[i] for i in keep],
            "every test-split clip of sources.py (held-out packages, as evaluate.py)")


def heldout_figures(model: AudioEventModel, clips: list[Any], audio: list[np.ndarray]) -> dict[str, dict]:
    """Per product label: recall and false events per hour, with their exact 95 % bounds (the runtime logic), on
    the clips alone (``clean``) and with each event clip laid over a held-out background at 10 dB SNR
    (``over_background``: a correction learnt on music must not cost the events heard over it)."""
    backgrounds = [x for c, x in zip(clips, audio) if c.label == "background" and x.size >= SR]
    out = {}
    for name, beds, seed in (("clean", None, evaluate.EVAL_SEED), ("over_background", backgrounds or None,
                                                                   evaluate.EVAL_SEED + 1)):
        scans = evaluate.scan_all(model, clips, audio, np.random.default_rng(seed), beds)
        res = evaluate.evaluate_clips(model, clips, audio, scans, raw=False)
        out[name] = {label: _label_figures(m, max(res["background_hours"], 1e-9))
                     for label, m in res["per_label"].items()}
    return out


def _label_figures(m: dict, hours: float) -> dict:
    tp, n, fa = m["tp"], m["positives"], m["false_alarms"]
    lo, hi = binomial_bounds(tp, n) if n else (0.0, 1.0)
    flo, fhi = poisson_bounds(fa)
    return {"positives": n, "detected": tp, "recall": round(tp / n, 4) if n else None,
            "recall_95": [round(lo, 4), round(hi, 4)], "false_events": fa, "background_hours": round(hours, 4),
            "false_per_hour": round(fa / hours, 4), "false_per_hour_95": [round(flo / hours, 4), round(fhi / hours, 4)]}


# -- feedback slice -------------------------------------------------------------------------------------------

def slice_errors(model: AudioEventModel, items: list[Labelled]) -> dict[str, Any]:
    """Errors on the held-out feedback: a flagged label raised again, or a reported event not raised."""
    rng = np.random.default_rng(SEED + 7)
    errors, checked, detail = 0, 0, []
    for lab in items:
        started = set(evaluate.event_starts(model, *evaluate.scan(model, lab.item.audio, rng), raw=False))
        it = lab.item
        wrong = it.predicted if it.predicted not in (None, finetune.MISSED, it.corrected) else None
        truth = it.corrected if it.corrected not in (None, finetune.NOTHING) else None
        bad = (wrong is not None and wrong in started) + (truth is not None and truth not in started)
        errors += int(bad)
        checked += 1
        detail.append({"sample_id": lab.sample_id, "predicted": it.predicted, "corrected": it.corrected,
                       "raised": sorted(started), "error": bool(bad)})
    return {"samples": checked, "errors": errors, "detail": detail}


# -- gate ---------------------------------------------------------------------------------------------------

def gate(parent: dict[str, dict], new: dict[str, dict], parent_slice: dict, new_slice: dict) -> dict[str, Any]:
    """The release gate's verdict, with a reason per failed check. ``parent``/``new``: heldout_figures()."""
    reasons = []
    for condition, labels in parent.items():
        for label, p in labels.items():
            n = new[condition][label]
            if p["recall"] is not None and n["recall"] < p["recall_95"][0]:
                reasons.append(f"{label} ({condition}): held-out recall {n['recall']:.3f} below the parent's 95 % "
                               f"lower bound {p['recall_95'][0]:.3f}")
            if condition == "clean" and n["false_per_hour"] > p["false_per_hour_95"][1]:
                reasons.append(f"{label}: {n['false_per_hour']:.3f} false events/h on the held-out set, above the "
                               f"parent's 95 % upper bound {p['false_per_hour_95'][1]:.3f}")
    if new_slice["samples"] == 0:
        reasons.append("no held-out feedback to show the new model is better on it")
    elif new_slice["errors"] >= parent_slice["errors"]:
        reasons.append(f"not better on the held-out feedback: {new_slice['errors']} errors against the parent's "
                       f"{parent_slice['errors']} on {new_slice['samples']} samples")
    return {"passed": not reasons, "reasons": reasons,
            "rule": "per product label on the held-out real set: recall >= the parent's 95 % lower bound, alone and "
                    "over held-out backgrounds at 10 dB; false events/h <= the parent's 95 % upper bound; strictly "
                    "fewer errors on the held-out feedback slice"}


# -- the release ------------------------------------------------------------------------------------------------

def write_model_dir(out: Path, version: str, model: onnx.ModelProto, parent_entry: dict[str, Any]) -> Path:
    """``out/<file>`` + ``out/manifest.json`` (the runtime's entry), so the runtime loads it as a hub would."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / model_file_name(NAME, version)
    onnx.save(model, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    entry = {**parent_entry, "file": path.name, "version": version, "sha256": sha}
    (out / "manifest.json").write_text(json.dumps({"models": {NAME: entry}}, indent=2, sort_keys=True) + "\n")
    return path


def release_manifest(version: str, path: Path, entry: dict[str, Any], parent: str, rollout: float,
                     verdict: dict, metrics: dict, training: dict) -> ReleaseManifest:
    data = path.read_bytes()
    return ReleaseManifest(
        name=NAME, version=version, parent_version=parent, file=path.name,
        sha256=hashlib.sha256(data).hexdigest(), size=len(data), rollout_percent=rollout,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), key_id="unsigned",
        kind=entry.get("kind", NAME), labels=entry["labels"], product_labels=entry["product_labels"],
        sample_rate=entry["sample_rate"], window_samples=entry["window_samples"], input=entry["input"],
        output=entry["output"], activation=entry.get("activation", "sigmoid"), opset=entry.get("opset", 17),
        thresholds=entry["thresholds"], min_duration_s=entry.get("min_duration_s", {}),
        gate=verdict, metrics=metrics, training_data=training)


@dataclass
class Outcome:
    manifest: ReleaseManifest
    model_path: Path
    report: dict[str, Any]


def retrain(samples: list[FeedbackSample], *, parent_dir: Path, version: str, out: Path, base: str = "real",
            base_scale: float = 1.0, heldout: str = "test-split", slice_percent: float = 25.0,
            steps: int = 300, l2: float = 1e-2, rollout: float = 5.0, workers: int = 2) -> Outcome:
    """Everything but publishing; the gate's verdict is in the manifest (``gate.passed``)."""
    parent_model = AudioEventModel.from_manifest(NAME, parent_dir)
    parent_entry = json.loads((parent_dir / "manifest.json").read_text())["models"][NAME]
    if parse_version(version) <= parse_version(parent_model.version):
        raise ValueError(f"--version {version} must be newer than the parent {parent_model.version}")
    labels, product = list(parent_entry["labels"]), list(parent_entry["product_labels"])
    proto = onnx.load(parent_model.info.path)
    embedder = finetune.Embedder(proto)
    items = labelled(samples)
    train_items, slice_items = split_feedback(items, slice_percent)
    log(f"feedback: {len(samples)} samples, {len(items)} labelled: {len(train_items)} to train on, "
        f"{len(slice_items)} held out")
    ef, yf, wf = feedback_arrays(train_items, embedder, labels, product)
    xb, yb, base_info = base_windows(base, base_scale, SEED, workers)
    eb, _ = embedder(xb)
    log(f"base: {len(eb)} windows ({base_info['kind']}); feedback: {len(ef)} windows")
    emb = np.concatenate([eb, ef]) if len(ef) else eb
    y = np.concatenate([yb, yf]) if len(ef) else yb
    wt = np.concatenate([np.ones_like(yb), wf]) if len(ef) else np.ones_like(yb)
    w0, b0 = finetune.head(proto)
    # balance=False: the parent was trained on plain BCE at the data's own label frequencies, and its thresholds
    # are calibrated for that; reweighting positives up (balance=True) raised false events on the held-out set
    # for dog_bark, scream and siren in the first loop experiment, and the gate refused it (model card).
    w, b, fit = finetune.fit_head(emb, y, wt, w0, b0, l2_to_prior=l2, steps=steps, seed=SEED, balance=False)
    log(f"head refit: loss {fit['initial_loss']:.4f} -> {fit['final_loss']:.4f} in {fit['steps']} steps")
    path = write_model_dir(out, version, finetune.replace_head(proto, w, b), parent_entry)
    new_model = AudioEventModel.from_manifest(NAME, out)
    clips, audio, heldout_what = heldout_set(heldout)
    figures = {"parent": heldout_figures(parent_model, clips, audio), "new": heldout_figures(new_model, clips, audio)}
    slices = {"parent": slice_errors(parent_model, slice_items), "new": slice_errors(new_model, slice_items)}
    verdict = gate(figures["parent"], figures["new"], slices["parent"], slices["new"])
    log(f"gate: {'PASSED' if verdict['passed'] else 'REFUSED'} {'; '.join(verdict['reasons'])}")
    metrics = {"heldout_real": {"set": heldout_what, "clips": len(clips), **figures},
               "feedback_slice": {"percent": slice_percent, "parent": _no_detail(slices["parent"]),
                                  "new": _no_detail(slices["new"])}}
    training = {"parent_version": parent_model.version, "seed": SEED, "method": "head refit (finetune.py) on "
                "frozen embeddings; thresholds and minimum durations from the parent",
                "feedback_samples": len(samples), "feedback_labelled": len(items),
                "feedback_trained": len(train_items), "feedback_held_out": len(slice_items),
                "feedback_windows": int(len(ef)), "feedback_by_correction": _counts(train_items),
                "base": base_info, "fit": {k: v for k, v in fit.items() if not isinstance(v, list)},
                "fit_hard_cells": {"positives": fit.get("hard_positives"), "negatives": fit.get("hard_negatives")}}
    manifest = release_manifest(version, path, parent_entry, parent_model.version, rollout, verdict, metrics,
                                training)
    (out / "release.json").write_bytes(manifest.to_bytes())
    report = {"gate": verdict, "metrics": metrics, "training_data": training, "slice_detail": slices}
    (out / "retrain_report.json").write_text(json.dumps(report, indent=2, default=_json) + "\n")
    return Outcome(manifest, path, report)


def _no_detail(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "detail"}


def _counts(items: list[Labelled]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        key = f"{i.item.predicted}->{i.item.corrected}"
        out[key] = out.get(key, 0) + 1
    return out


def _json(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value))


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--endpoint", default=env("FEEDBACK_S3_ENDPOINT"), help="feedback bucket host:port")
    ap.add_argument("--bucket", default=env("FEEDBACK_S3_BUCKET"), help="feedback bucket")
    ap.add_argument("--insecure", action="store_true", help="plain HTTP (a local MinIO / moto)")
    ap.add_argument("--parent", type=Path, default=HERE.parent, help="directory of the parent's manifest.json")
    ap.add_argument("--version", required=True, help="the new release's version (newer than the parent's)")
    ap.add_argument("--out", type=Path, required=True, help="where the model, release.json and the report go")
    ap.add_argument("--base", choices=("real", "synth"), default="real")
    ap.add_argument("--base-scale", type=float, default=1.0)
    ap.add_argument("--heldout", choices=("test-split", "samples"), default="test-split")
    ap.add_argument("--slice", type=float, default=25.0, help="percent of labelled feedback held out for the gate")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rollout", type=float, default=5.0, help="rollout_percent of the release")
    ap.add_argument("--key", type=Path, help="PEM signing key: publish when the gate passes")
    ap.add_argument("--publish-dir", type=Path)
    ap.add_argument("--publish-endpoint")
    ap.add_argument("--publish-bucket")
    ap.add_argument("--prefix", default="releases")
    args = ap.parse_args(argv)
    access, secret = env("FEEDBACK_S3_ACCESS_KEY"), env("FEEDBACK_S3_SECRET_KEY")
    if not (args.endpoint and args.bucket and access and secret):
        ap.error("give --endpoint and --bucket, with FEEDBACK_S3_ACCESS_KEY / FEEDBACK_S3_SECRET_KEY set")
    bucket = FeedbackBucket.connect(args.endpoint, args.bucket, access_key=access, secret_key=secret,
                                    secure=not args.insecure)
    outcome = retrain(list(bucket.samples()), parent_dir=args.parent, version=args.version, out=args.out,
                      base=args.base, base_scale=args.base_scale, heldout=args.heldout, slice_percent=args.slice,
                      steps=args.steps, rollout=args.rollout)
    if not outcome.manifest.gate["passed"]:
        print("refused by the release gate: " + "; ".join(outcome.manifest.gate["reasons"]), file=sys.stderr)
        return 3
    if args.key is not None and (args.publish_dir or args.publish_bucket):
        from edge_media.rollout.release import private_key_from_bytes

        import publish

        key = private_key_from_bytes(args.key.read_bytes())
        if args.publish_dir:
            target: publish.Target = publish.DirTarget(args.publish_dir)
        else:
            from minio import Minio

            client = Minio(args.publish_endpoint, env("MODELS_S3_ACCESS_KEY"), env("MODELS_S3_SECRET_KEY"),
                           secure=not args.insecure)
            target = publish.S3Target(client, args.publish_bucket)
        publish.publish(target, args.prefix, outcome.model_path.read_bytes(), outcome.manifest, key)
        print(f"published {NAME} {args.version} ({outcome.manifest.rollout_percent:g} % rollout)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
