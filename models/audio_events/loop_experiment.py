"""Does the feedback loop work? Flag the shipped model's false alarms in one half of held-out audio, retrain,
and measure on the other half, which nobody flagged, tuned or trained on.

    python models/audio_events/loop_experiment.py --pool-cache /tmp/home_pool.pkl     # about 40 min on 2 cores

1. The held-out home-like pool (``home_pool.py``, 20 h, no package of it in training) is split BY SOURCE FILE (a
   hash of its path) into "flagged at home" and "never seen".
2. The shipped model hears every "at home" file through the hub's chain (windows, silence gate, event logic with
   the hub's defaults); each false event it raises is flagged by its owner as "nothing there".
3. Each flag goes the real way: the owner's consent in the consent ledger, the real anonymiser (cut, resample,
   speech mask, FLAC) on a clip file, the feedback queue and sender, a real S3 server (moto) as the partner
   bucket; ``retrain.py`` reads it back through ``feedback_data.FeedbackBucket``.
4. ``retrain.retrain`` (base data from the training split, gate on the held-out real set) makes the new model.
5. Before and after, on the never-seen half: false events per hour per label (Poisson 95 %), and recall of
   events laid over never-seen beds (the held-out alarm/siren generators and the real test-only clips); and on
   the held-out real set, the gate's own figures. Written to ``loop_experiment.json``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402

from edge_media.audio.model import AudioEventModel  # noqa: E402
from edge_media.privacy.consent import ConsentLedger  # noqa: E402
from edge_media.privacy.feedback import FeedbackQueue  # noqa: E402
from edge_media.privacy.feedback_send import FeedbackSender  # noqa: E402
from edge_media.privacy.notices import Purpose  # noqa: E402
from edge_media.tools.devserver import MotoServer  # noqa: E402
from uploader.db import Database  # noqa: E402

import home_eval  # noqa: E402
import home_pool  # noqa: E402
import retrain  # noqa: E402
import smoke_samples  # noqa: E402
import synth  # noqa: E402
from feedback_data import FeedbackBucket  # noqa: E402

SEED = 20261202
SR = 16000
OWNER = "owner"
HUB = home_eval.CONFIGS["service_default"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def at_home(path: str) -> bool:
    """Half of the files, by a hash of the path: the same split on every run."""
    return int(hashlib.sha256(path.encode()).hexdigest()[:8], 16) % 2 == 0


def false_events(model: AudioEventModel, clips: list, rng: np.random.Generator) -> list[dict]:
    """Each file alone, at a home level between 1 s of room tone: the events the hub would raise."""
    found = []
    for i, c in enumerate(clips):
        level = float(rng.uniform(-38, -18))
        x = home_eval.at_level(c.audio, level)
        pad = synth.room_tone(SR, rng)
        ws, scores = home_eval.score_stream(model, np.concatenate([pad, x, pad]))
        starts, _, _ = home_eval.run_logic(model, HUB, ws, scores)
        for label, start, _ in starts:
            peak = max((float(s[model.labels.index(label)]) for w, s in zip(ws, scores)
                        if s is not None and abs(w.time - start) < 2.0), default=0.5)
            found.append({"clip": i, "path": c.path, "package": c.package, "label": label, "level_dbfs": level,
                          "start_s": max(0.0, start - 1.0), "score": round(min(1.0, peak), 3)})
    return found


def send_feedback(events: list[dict], clips: list, work: Path, server: MotoServer, version: str) -> str:
    """The owner flags every event "nothing"; the hub's consent, anonymiser, queue and sender do the rest."""
    db = Database(work / "hub.db")
    ledger = ConsentLedger(db)
    ledger.grant(OWNER, Purpose.MISDETECTION_FEEDBACK, actor=OWNER, method="cli")
    queue = FeedbackQueue(db, work / "feedback-spool", ledger)
    media = work / "clips"
    media.mkdir(exist_ok=True)
    for n, ev in enumerate(events):
        path = media / f"{n}.flac"
        if not path.exists():
            c = clips[ev["clip"]]
            path.write_bytes(smoke_samples.encoded(home_eval.at_level(c.audio, ev["level_dbfs"])))
        span = (ev["start_s"], min(ev["start_s"] + 4.0, len(clips[ev["clip"]].audio) / SR))
        prepared = queue.prepare(OWNER, Purpose.MISDETECTION_FEEDBACK, path, label=ev["label"], span=span,
                                 predicted=ev["label"], score=ev["score"], corrected="nothing",
                                 model_name="audio_events", model_version=version, month="2026-11")
        queue.queue(prepared)
    store = server.info.store()
    store.ensure_bucket()
    sent = FeedbackSender(queue, store).send_pass(limit=10_000)
    log(f"feedback sent: {sent}")
    db.close()
    return store.bucket


def measure(model: AudioEventModel, beds: list, real: dict, count: int, seed: int) -> dict:
    """False events per hour on the never-seen files; recall of held-out events laid over never-seen beds."""
    rng = np.random.default_rng(seed)
    neg = home_eval.negatives(model, beds, rng)["service_default"]
    out = {"hours": neg["hours"], "false_events": {k: v for k, v in neg["per_label"].items() if v["false_events"]},
           "false_events_total": sum(v["false_events"] for v in neg["per_label"].values())}
    if not count:
        return out
    audio = [c.audio for c in beds if len(c.audio) >= 4 * SR]
    rec = {label: home_eval.recall(model, label, home_eval.synthetic_events(label, count, rng), audio, rng)
           ["service_default"] for label in ("smoke_co_alarm", "siren")}
    rec |= {f"{label} (real)": home_eval.recall(model, label, evs, audio, rng)["service_default"]
            for label, evs in sorted(real.items())}
    return {**out, "recall": {k: {"recall": v["recall"], "recall_95": v["recall_95"], "events": v["events"]}
                       for k, v in rec.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool-cache", type=Path, default=None)
    ap.add_argument("--events", type=int, default=60, help="synthetic alarms and sirens per measurement")
    ap.add_argument("--version", default="1.2.1")
    ap.add_argument("--out", type=Path, default=HERE / "loop_experiment.json")
    args = ap.parse_args()
    parent = AudioEventModel.from_manifest()
    clips, _ = home_pool.load(args.pool_cache)
    home = [c for c in clips if at_home(c.path)]
    unseen = [c for c in clips if not at_home(c.path)]
    hours = {k: round(sum(len(c.audio) for c in v) / SR / 3600, 3) for k, v in (("home", home), ("unseen", unseen))}
    log(f"pool: {len(clips)} files; at home {len(home)} ({hours['home']} h), never seen {len(unseen)} "
        f"({hours['unseen']} h)")
    events = false_events(parent, home, np.random.default_rng(SEED))
    log(f"{len(events)} false events at home: {_count(events)}")
    real = home_eval.real_events(np.random.default_rng(SEED + 1))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = MotoServer().start()
        try:
            bucket = send_feedback(events, home, work, server, parent.version)
            samples = list(FeedbackBucket(server.info.client(), bucket).samples())
            log(f"partner bucket: {len(samples)} samples")
            outcome = retrain.retrain(samples, parent_dir=HERE.parent, version=args.version, out=work / "release",
                                      base="real", heldout="test-split")
            new = AudioEventModel.from_manifest("audio_events", work / "release")
            results = {"parent": measure(parent, unseen, real, args.events, SEED + 2),
                       "retrained": measure(new, unseen, real, args.events, SEED + 2),
                       "parent_at_home": measure(parent, home, {}, 0, SEED + 3)["false_events_total"],
                       "retrained_at_home": measure(new, home, {}, 0, SEED + 3)["false_events_total"]}
        finally:
            server.close()
    report = {"split": {"files": {"home": len(home), "unseen": len(unseen)}, "hours": hours},
              "flagged_false_events": len(events), "flagged_by_label": _count(events),
              "feedback_samples": len(samples), "gate": outcome.manifest.gate,
              "heldout_real": outcome.report["metrics"]["heldout_real"],
              "feedback_slice": outcome.report["metrics"]["feedback_slice"],
              "training_data": outcome.report["training_data"], "never_seen": results}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name in ("parent", "retrained"):
        r = results[name]
        log(f"{name}: never seen {r['hours']} h, {r['false_events_total']} false events "
            f"{ {k: v['false_events'] for k, v in r['false_events'].items()} }; recall "
            f"{ {k: v['recall'] for k, v in r['recall'].items()} }")
    log(f"at home (flagged, trained on): {results['parent_at_home']} -> {results['retrained_at_home']} false events")
    log(f"gate: {outcome.manifest.gate}; wrote {args.out}")


def _count(events: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for ev in events:
        out[ev["label"]] = out.get(ev["label"], 0) + 1
    return out


if __name__ == "__main__":
    main()
