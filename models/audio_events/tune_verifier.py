"""Choose the smoke/CO alarm verifier's level limits on TRAINING-SIDE data only (issue 12).

The verifier (``edge_media/audio/verify.py``) fits T3/T4 templates to a pulsed tone and then asks whether
the fit sounds like one sounder: its pulses over its pauses (``pause_db``, per pattern), how equal its
pulses are (``pulse_spread_db``), how unbroken each pulse's tone is (``pulse_held``) and, for T4, how far
its short gaps dip (``dip_db``). Those limits are chosen here, never on the held-out pool or the held-out event
generator (``home_eval.py`` / ``heldout_events.py``), so that the recall and false events reported there
stay honest:

* positives: the training recipe's alarms (``synth.smoke_co_alarm``: piezo 2.5-4.2 kHz without the held-out
  3.6-3.8 kHz band, low-frequency sounders, T3/T4 with timing x0.85-1.15), half in a room, over the
  VALIDATION split's real backgrounds (half), synthetic confusers or synthetic noise and hum at 0-10 dB;
* negatives: the validation split's real clips (background, speech, and every other label's events) and
  the calibration stream's synthetic household confusers (``calibrate.confuser_piece``: music, electronic
  music, birds, bells, phones, whistling, clinking, kettles), checked in 8 s pieces every 2 s.

Every fit the checker weighs is recorded with its levels, so each candidate setting is scored from one
pass: a piece counts as confirmed under a setting if any fit it weighed passes it.

    python models/audio_events/tune_verifier.py [--positives 300] [--confuser-min 60]
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE))

from edge_media.audio import verify  # noqa: E402

import calibrate  # noqa: E402
import dataset  # noqa: E402
import negatives  # noqa: E402
import sources  # noqa: E402
import synth  # noqa: E402

SR = 16000
SEED = 1207
GRID = {"pause_db_t3": (6.0, 10.0, 15.0), "pause_db_t4": (10.0, 15.0, 20.0),
        "pulse_spread_db": (4.0, 6.0, float("inf")), "pulse_held": (0.0, 0.5, 0.6, 0.75),
        "dip_db": (0.0, 3.0, 6.0)}


class _Recorder(verify.AlarmPatternCheck):
    """Weighs every fit the checker would, records its levels, and passes none."""

    fits: list  # (kind, *AlarmFit) per weighed fit

    def _stands_out(self, tpl: verify._Template, level: np.ndarray, on: np.ndarray, at: int, j: int) -> bool:
        self.fits.append((tpl.kind, *verify.alarm_levels(tpl, level, on, at, j)))
        return False


def _recorder() -> _Recorder:
    inf = float("inf")
    rec = _Recorder(pause_db=(0.0, 0.0), pulse_spread_db=inf, pulse_held=0.0, dip_db=-inf)
    object.__setattr__(rec, "fits", [])
    return rec


def weigh(rec: _Recorder, x: np.ndarray, step_s: float) -> list:
    """Fits weighed over x, looking back 8 s every ``step_s`` (as the hub does during a candidate)."""
    rec.fits.clear()
    n = int(rec.seconds * SR)
    for end in range(min(len(x), n), len(x) + 1, int(step_s * SR)):
        rec.check(x[max(0, end - n):end], SR)
    return list(rec.fits)


def passes(fits: list, t3: float, t4: float, spread: float, held: float, dip: float) -> bool:
    return any(over >= (t4 if kind == "T4" else t3) and sp <= spread and h >= held and (d is None or d >= dip)
               for kind, over, sp, h, d in fits)


def positives(count: int, beds: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for _ in range(count):
        n = 16 * SR
        x = synth.smoke_co_alarm(n, rng)
        if rng.random() < 0.5:
            x = synth.reverb(x, rng)
        kind = rng.random()
        bed = (beds[int(rng.integers(len(beds)))] if kind < 0.5 else negatives.confuser(n, rng) if kind < 0.75
               else synth.random_background(n, rng))
        bed = np.resize(bed, n) if len(bed) < n else bed[:n]
        out.append(synth.set_level(synth.mix_at_snr(x, bed + 1e-4 * rng.standard_normal(n), rng.uniform(0, 10)),
                                   rng.uniform(-35, -18)))
    return out


def negative_pieces(clips: list[np.ndarray], confuser_min: float, rng: np.random.Generator) -> list[np.ndarray]:
    pieces = [synth.set_level(x, rng.uniform(-38, -18)) for x in clips if len(x) >= 4 * SR]
    return pieces + [calibrate.confuser_piece(8 * SR, rng) for _ in range(int(confuser_min * 60 // 8))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--positives", type=int, default=300, help="training-recipe alarms to weigh (>= 1)")
    ap.add_argument("--confuser-min", type=float, default=60.0, help="minutes of synthetic confusers (> 0)")
    args = ap.parse_args()
    if args.positives < 1 or not args.confuser_min > 0:
        ap.error("--positives must be >= 1 and --confuser-min > 0")
    rng = np.random.default_rng(SEED)
    val = dataset.load_pools(sources.collect(), "val", [])
    others = [x for label, xs in val["events"].items() if label != "smoke_co_alarm" for x in xs]
    beds = [x for x in val["background"] if len(x) >= 2 * SR]
    rec = _recorder()
    pos = [weigh(rec, x, 0.4875) for x in positives(args.positives, beds, rng)]
    pieces = negative_pieces(val["background"] + val["speech"] + others, args.confuser_min, rng)
    neg = [weigh(rec, x, 2.0) for x in pieces]
    hours = sum(len(x) for x in pieces) / SR / 3600
    print(f"{len(pos)} positives; {len(pieces)} negative pieces, {hours:.2f} h")
    print("pause_db T3  T4  spread held dip | recall  negative pieces confirmed")
    for t3, t4, spread, held, dip in itertools.product(*GRID.values()):
        rec_ = np.mean([passes(f, t3, t4, spread, held, dip) for f in pos])
        fa = sum(passes(f, t3, t4, spread, held, dip) for f in neg)
        print(f"        {t3:4.0f} {t4:4.0f} {spread:6.1f} {held:4.2f} {dip:4.1f} | {rec_:.3f}   {fa}")


if __name__ == "__main__":
    main()
