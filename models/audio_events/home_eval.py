"""The issue's table on held-out data: ``python models/audio_events/evaluate.py --home``.

Everything goes through the runtime's own parts, as a hub runs them: ``AudioWindower`` (0.4875 s
hop, silence gate) -> ``AudioEventModel`` -> ``AudioEventLogic`` built by ``new_logic`` from an
``AudioConfig``; three times from the same scores: the CNN alone (``verify = []``), the service's
default (the smoke/CO alarm verified) and both pattern verifiers (``verify = ["smoke_co_alarm", "siren"]``).

* False events per hour: each held-out pool package (home_pool.py) is played as one continuous
  stream, file after file with a second of quiet room between, each file at a level drawn from
  -38..-18 dBFS; every event start is a false event. Hours are hours of distinct audio. Bounds are
  exact (Garwood) Poisson 95 % intervals, per package and over the pool.
* Recall, event level: an event counts when the logic starts an event of its label whose start is
  within one window (0.975 s) of the true onset. Alarms and sirens are SYNTHETIC (heldout_events.py,
  no real recording exists in reach), laid over a random pool clip at 0-10 dB SNR; real clips of the
  other labels from the installed test-only packages are laid over pool clips at 10 dB SNR.
* CPU: seconds spent in the verifiers per second of audio (RTF, one thread), beside the model's.
"""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from edge_media.audio.model import AudioEventModel
from edge_media.audio.setup import new_logic, new_windower
from edge_media.config import AudioConfig

import heldout_events
import home_pool
import sources
import synth
from bounds import binomial_bounds, poisson_bounds

SR = 16000
# the CNN alone, the hub's default (the smoke/CO alarm verified), and both pattern verifiers
CONFIGS = {"cnn_only": AudioConfig(verify=[]), "service_default": AudioConfig(),
           "cnn_verifier": AudioConfig(verify=["smoke_co_alarm", "siren"])}
GAP_S = 1.0
EVENT_LEAD_S, EVENT_SECONDS = 4.0, 16.0


def at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-12
    return np.clip(x * (10 ** (dbfs / 20) / rms), -1, 1).astype(np.float32)


def score_stream(model: AudioEventModel, x: np.ndarray) -> tuple[list, list]:
    windower = new_windower(model, CONFIGS["cnn_only"])
    ws = windower.push(x, 0.0) + windower.end()
    loud = [w.samples for w in ws if not w.silent]
    it = iter(np.concatenate([model.predict(np.stack(loud[i:i + 64])) for i in range(0, len(loud), 64)])
              if loud else ())
    return ws, [None if w.silent else next(it) for w in ws]


def run_logic(model: AudioEventModel, cfg: AudioConfig, ws: list, scores: list) -> tuple[list, float, int]:
    """Event starts (label, start, decided at), seconds spent in the logic, verifier calls."""
    logic = new_logic("eval", model, cfg)
    starts = []
    t0 = time.perf_counter()
    for w, s in zip(ws, scores):
        for tr in logic.update(w.time, s, w.samples):
            if tr.kind == "start" and not tr.event.continued:
                starts.append((tr.event.label, tr.event.start, w.time + len(w.samples) / SR))
    return starts, time.perf_counter() - t0, logic.verifier_calls


def negatives(model: AudioEventModel, clips: list, rng: np.random.Generator) -> dict:
    by_pkg: dict[str, list] = defaultdict(list)
    for c in clips:
        by_pkg[c.package].append(c)
    out: dict = {name: {"packages": {}} for name in CONFIGS}
    totals = {name: {"seconds": 0.0, "fa": defaultdict(int), "logic_s": 0.0, "calls": 0, "where": []}
              for name in CONFIGS}
    for pkg, group in sorted(by_pkg.items()):
        parts, spans, pos = [], [], 0
        for c in group:
            x = at_level(c.audio, rng.uniform(-38, -18))
            parts += [x, synth.room_tone(int(GAP_S * SR), rng)]
            spans.append((pos / SR, (pos + len(x)) / SR, c.path))
            pos += len(x) + int(GAP_S * SR)
        stream = np.concatenate(parts)
        seconds = sum(len(c.audio) for c in group) / SR
        ws, scores = score_stream(model, stream)
        for name, cfg in CONFIGS.items():
            starts, logic_s, calls = run_logic(model, cfg, ws, scores)
            fa: dict[str, int] = defaultdict(int)
            for label, start, _ in starts:
                fa[label] += 1
                clip = next((p for a, b, p in spans if a - 1 <= start <= b + 1), "?")
                totals[name]["where"].append({"label": label, "package": pkg, "clip": clip})
            tot = totals[name]
            tot["seconds"] += seconds
            tot["logic_s"] += logic_s
            tot["calls"] += calls
            for k, v in fa.items():
                tot["fa"][k] += v
            out[name]["packages"][pkg] = {"category": group[0].category, "files": len(group),
                                          "hours": round(seconds / 3600, 4), "false_events": dict(fa)}
    for name, tot in totals.items():
        hours = tot["seconds"] / 3600
        per_label = {}
        for label in model.labels:
            k = tot["fa"].get(label, 0)
            lo, hi = poisson_bounds(k)
            per_label[label] = {"false_events": k, "per_hour": round(k / hours, 3),
                                "per_hour_95": [round(lo / hours, 3), round(hi / hours, 3)]}
        out[name].update({"hours": round(hours, 3), "per_label": per_label, "false_events": tot["where"],
                          "logic_rtf": round(tot["logic_s"] / tot["seconds"], 6),
                          "verifier_calls_per_hour": round(tot["calls"] / hours, 1)})
    return out


def recall(model: AudioEventModel, label: str, events: list, beds: list, rng: np.random.Generator) -> dict:
    """events: (audio, onset seconds within it, description); each laid over a pool bed."""
    out: dict = {name: {"hits": 0, "latency_s": [], "missed": [], "held_out_range": [0, 0], "by_source": {}}
                 for name in CONFIGS}
    for x, onset, desc, snr in events:
        bed = beds[int(rng.integers(len(beds)))]
        bed = np.resize(bed, len(x)) if len(bed) < len(x) else bed[: len(x)]
        sig_on = np.abs(x) > 1e-3
        p_sig = float(np.mean(x[sig_on] ** 2)) if sig_on.any() else 1e-6
        p_bed = float(np.mean(bed ** 2)) + 1e-12
        y = x + bed * np.sqrt(p_sig / p_bed / 10 ** (snr / 10))
        y = at_level(y, rng.uniform(-35, -18))
        ws, scores = score_stream(model, y)
        for name, cfg in CONFIGS.items():
            starts, _, _ = run_logic(model, cfg, ws, scores)
            hit = [(s, d) for lab, s, d in starts if lab == label and abs(s - onset) <= 0.975 + 1e-6]
            if ":" in desc:  # a real clip "package:path": [hits, events] per held-out source
                src = out[name]["by_source"].setdefault(desc.split(":")[0], [0, 0])
                src[0] += bool(hit)
                src[1] += 1
            if "held-out range" in desc:  # [hits, events] on parameters training never drew
                out[name]["held_out_range"][0] += bool(hit)
                out[name]["held_out_range"][1] += 1
            if hit:
                out[name]["hits"] += 1
                out[name]["latency_s"].append(round(hit[0][1] - onset, 2))
            else:
                out[name]["missed"].append(desc)
    n = len(events)
    for res in out.values():
        lo, hi = binomial_bounds(res["hits"], n)
        lat = res.pop("latency_s")
        res.update({"events": n, "recall": round(res["hits"] / n, 4), "recall_95": [round(lo, 3), round(hi, 3)],
                    "median_decision_latency_s": float(np.median(lat)) if lat else None,
                    "max_decision_latency_s": float(max(lat)) if lat else None})
        res["missed"] = res["missed"][:20]
    return out


def synthetic_events(label: str, count: int, rng: np.random.Generator) -> list:
    n, onset = int(EVENT_SECONDS * SR), int(EVENT_LEAD_S * SR)
    out = []
    for _ in range(count):
        x, desc = heldout_events.GENERATORS[label](n, onset, rng)
        out.append((x, EVENT_LEAD_S, desc, rng.uniform(0, 10)))
    return out


def real_events(rng: np.random.Generator) -> dict[str, list]:
    """Real event clips of the installed test-only packages, 3 s into a quiet lead, at 10 dB SNR."""
    out: dict[str, list] = defaultdict(list)
    for c in sources.collect():
        if c.split != "test" or c.label not in sources.LABELS_PRODUCT:
            continue
        x = sources.load_audio(c.path, c.max_seconds)
        if x.size < 400:
            continue
        env = np.sqrt(np.convolve(x ** 2, np.ones(160) / 160, mode="same"))
        first = int(np.argmax(env >= env.max() * 10 ** (-20 / 20)))  # first sound within 20 dB of its peak
        lead = int(3 * SR)
        y = np.concatenate([np.zeros(lead, np.float32), x, np.zeros(3 * SR, np.float32)])
        out[c.label].append((y, (lead + first) / SR, f"{c.package}:{c.path}", 10.0))
    return out


def evaluate_home(model: AudioEventModel, seed: int, count: int, pool_cache: Path | None = None) -> dict:
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    clips, audit = home_pool.load(pool_cache)
    print(f"pool: {len(clips)} distinct files, {sum(len(c.audio) for c in clips) / SR / 3600:.2f} h "
          f"({time.perf_counter() - t:.0f} s to decode); {audit}")
    result: dict = {"pool_audit": audit, "pool_packages": sorted({c.package for c in clips}),
                    "negatives": negatives(model, clips, rng)}
    beds = [c.audio for c in clips if len(c.audio) >= 4 * SR]
    result["recall_synthetic"] = {label: recall(model, label, synthetic_events(label, count, rng), beds, rng)
                                  for label in heldout_events.GENERATORS}
    result["recall_real"] = {label: recall(model, label, evs, beds, rng)
                             for label, evs in sorted(real_events(rng).items())}
    return result


def print_home(res: dict) -> None:
    for name in CONFIGS:
        neg = res["negatives"][name]
        print(f"\n[{name}] {neg['hours']:.2f} h of held-out home-like audio; logic RTF {neg['logic_rtf']}, "
              f"verifier calls {neg['verifier_calls_per_hour']}/h")
        print(f"{'label':15s} {'recall':>8s} {'95% CI':>15s} {'n':>4s} {'FA':>4s} {'FA/h':>7s} {'95% CI /h':>17s}")
        for label, m in neg["per_label"].items():
            rec = res["recall_synthetic"].get(label) or res["recall_real"].get(label)
            r = rec[name] if rec else None
            rtxt = (f"{r['recall']:8.3f} [{r['recall_95'][0]:.2f}, {r['recall_95'][1]:.2f}] {r['events']:4d}"
                    if r else f"{'-':>8s} {'-':>15s} {'-':>4s}")
            print(f"{label:15s} {rtxt} {m['false_events']:4d} {m['per_hour']:7.3f} "
                  f"[{m['per_hour_95'][0]:.3f}, {m['per_hour_95'][1]:.3f}]")
        for pkg, p in neg["packages"].items():
            print(f"   {pkg:28s} {p['category']:17s} {p['hours']:6.3f} h  {p['false_events']}")
