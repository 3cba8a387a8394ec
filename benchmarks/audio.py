"""Real-time factor of the audio-event path on one core: decode + resample + windows + model.

Input: a camera-like AAC 48 kHz track (minutes of pink-noise room tone, loud enough that every
window passes the silence gate — the worst case — with a few alarm bursts), and the same length of
a quiet home (mostly below the gate). RTF = CPU seconds / audio seconds (target <= 0.003, i.e. one
core serves >= 300 sources). Also the model file size (target <= 5 MB) and ms per window.

The AAC decode itself is measured apart, in the same run (a decode-only pass over the same file):
a camera's audio track is decoded for the clip's sake anyway, so the audio-event path's own cost is
``rtf_path`` = (total - decode floor) / audio seconds; ``rtf_total`` includes the decode.

    python benchmarks/audio.py [--minutes 10] [--json benchmarks/results/audio.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from edge_media.audio import AudioDetector, AudioEventModel, AudioFileSource  # noqa: E402
from edge_media.audio.setup import new_logic, new_windower  # noqa: E402
from edge_media.config import AudioConfig  # noqa: E402

from audio_fixtures import encode_audio, pink_noise, t3_pattern  # noqa: E402

RATE = 48000


def make_track(path: Path, minutes: float, noise_dbfs: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * RATE)
    audio = pink_noise(n, RATE, noise_dbfs, rng)
    t = np.arange(RATE * 8) / RATE
    burst = (0.2 * np.sin(2 * np.pi * 3100 * t) * t3_pattern(len(t), RATE)).astype(np.float32)
    for start in np.linspace(0.1, 0.9, 4) * (n - len(burst)):
        audio[int(start) : int(start) + len(burst)] += burst
    return encode_audio(path, audio, RATE)


def run(path: Path, model: AudioEventModel, cfg: AudioConfig, block_samples: int) -> dict:
    detector = AudioDetector(model, new_logic("bench", model, cfg), new_windower(model, cfg))
    calls0 = model.inference_calls
    t_decode = t_model = 0.0
    windows = inferred = events = 0
    c0 = time.process_time()
    blocks = iter(AudioFileSource(path, block_samples=block_samples))
    while True:
        d0 = time.process_time()
        block = next(blocks, None)
        t_decode += time.process_time() - d0
        if block is None:
            break
        m0 = time.process_time()
        for res in detector.push(block.samples, block.time):
            windows += 1
            inferred += res.scores is not None
            events += sum(1 for tr in res.transitions if tr.kind == "start")
        t_model += time.process_time() - m0
    total = time.process_time() - c0
    return {"windows": windows, "inferred": inferred, "events": events, "model_calls": model.inference_calls - calls0,
            "cpu_decode_resample_s": round(t_decode, 3), "cpu_windows_model_s": round(t_model, 3),
            "cpu_total_s": round(total, 3), "ms_per_inferred_window": round(1000 * t_model / max(inferred, 1), 3)}


def decode_floor(path: Path) -> float:
    """CPU seconds to demux + decode the track with no resampling: the floor the path is measured from."""
    import av

    c0 = time.process_time()
    with av.open(str(path)) as container:
        for _ in container.decode(audio=0):
            pass
    return time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--block-ms", type=int, default=500, help="source block size (a camera gives ~20-100 ms)")
    ap.add_argument("--hop-s", type=float, default=AudioConfig().hop_s, help="seconds between windows")
    ap.add_argument("--no-verify", action="store_true", help="the model's score alone (no alarm verifier)")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "audio.json")
    args = ap.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    cfg = AudioConfig(hop_s=args.hop_s, **({"verify": []} if args.no_verify else {}))
    model = AudioEventModel.from_manifest(threads=1)
    results = {"model_version": model.version, "model_bytes": model.info.path.stat().st_size,
               "audio_seconds": args.minutes * 60, "block_ms": args.block_ms, "hop_s": args.hop_s}
    with tempfile.TemporaryDirectory() as tmp:
        for name, dbfs in (("room_tone_all_windows_inferred", -35.0), ("quiet_home_mostly_gated", -75.0)):
            track = make_track(Path(tmp) / f"{name}.m4a", args.minutes, dbfs, seed=1)
            floors, runs = [], []
            for _ in range(3):  # interleaved with the path runs; the median of each is kept
                floors.append(decode_floor(track))
                runs.append(run(track, model, cfg, block_samples=16 * args.block_ms))
            floor = sorted(floors)[1]
            r = sorted(runs, key=lambda x: x["cpu_total_s"])[1]
            r["cpu_decode_floor_s"] = round(floor, 3)
            r["rtf_path"] = round((r["cpu_total_s"] - floor) / results["audio_seconds"], 5)
            r["rtf_total"] = round(r["cpu_total_s"] / results["audio_seconds"], 5)
            r["rtf_windows_model"] = round(r["cpu_windows_model_s"] / results["audio_seconds"], 5)
            results[name] = r
    print(json.dumps(results, indent=2))
    worst = results["room_tone_all_windows_inferred"]
    print(f"RTF, every window inferred: resample + windows + model {worst['rtf_path']} (target <= 0.003); "
          f"with the AAC decode {worst['rtf_total']}; "
          f"model file {results['model_bytes'] / 1e6:.2f} MB (target <= 5 MB)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
