"""Pipeline cost vs. its floor, on one core, in one run.

Floor: demux the record stream + decode the detect stream (the same file here: one stream per
camera, decoded once) — the least any motion-recording pipeline must do. Pipeline: the real thing
(edge_media.tools.analyze with a recorder): gray 320x180 detect frames, batched ONNX motion model,
event tracker, pre-roll ring, clips remuxed into the spool. Also a naive baseline: full-res BGR
conversion + OpenCV MOG2 on every frame. Runs are interleaved and repeated; medians of CPU time.

    python benchmarks/pipeline.py [--seconds 60] [--repeat 3] [--json benchmarks/results/pipeline.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2

from edge_media.config import AudioConfig
from edge_media.detect import MotionDetector
from edge_media.events import TrackerSettings
from edge_media.tools.analyze import AnalyzeOptions, analyze_file
from edge_media.tools.samples import MovingBox, VideoSpec, make_video
from recorder import CameraRecorder, Spool


def pin_one_core() -> int:
    cpu = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {cpu})
    cv2.setNumThreads(1)
    return cpu


def make_input(path: Path, seconds: float) -> Path:
    # Someone crosses the room three times; audio track present as on most cameras.
    boxes = [MovingBox(s, s + 4.0, size=(160, 320)) for s in (seconds * 0.2, seconds * 0.5, seconds * 0.8)]
    spec = VideoSpec(width=1280, height=720, fps=15, duration_s=seconds, gop=30, audio=True,
                     boxes=boxes, noise_sigma=2.0)
    return make_video(path, spec)


def floor(path: Path) -> dict:
    """Demux everything, decode the video: nothing else."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        v.codec_context.thread_count = 1
        frames = 0
        for packet in c.demux(v, *c.streams.audio[:1]):
            if packet.stream_index == v.index and packet.dts is not None:
                frames += len(v.codec_context.decode(packet))
    return {"frames": frames}


def pipeline(path: Path, detector: MotionDetector, spool_dir: Path, audio: bool = False) -> dict:
    clips = []
    spool = Spool(spool_dir)
    rec = CameraRecorder("bench", spool, pre_roll_s=3.0, ring_seconds=9.0, ring_max_bytes=64 << 20,
                         model_versions={"motion": detector.model_version},
                         on_clip=lambda p, sc: clips.append(sc))
    opts = AnalyzeOptions(detect_width=320, detect_fps=5.0, tracker=TrackerSettings(post_roll_s=3.0),
                          audio=AudioConfig() if audio else None)
    report = analyze_file(path, opts, detector=detector, recorder=rec)
    return {"events": len(report.events), "clips": len(clips), "frames": report.stats.frames_decoded}


def naive(path: Path) -> dict:
    """What a quick script would do: full-res BGR frames into MOG2."""
    mog = cv2.createBackgroundSubtractorMOG2()
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        v.codec_context.thread_count = 1
        n = 0
        for frame in c.decode(v):
            mog.apply(frame.to_ndarray(format="bgr24"))
            n += 1
    return {"frames": n}


def timed(fn, *args) -> tuple[float, float, dict]:
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn(*args)
    return time.process_time() - c0, time.perf_counter() - w0, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "pipeline.json")
    args = ap.parse_args()
    cpu = pin_one_core()
    with tempfile.TemporaryDirectory() as tmp:
        src = make_input(Path(tmp) / "cam720p15.mp4", args.seconds)
        detector = MotionDetector(threads=1)
        runs: dict[str, list[tuple[float, float, dict]]] = {"floor": [], "pipeline": [], "pipeline+audio": [],
                                                            "naive": []}
        for i in range(args.repeat):
            runs["floor"].append(timed(floor, src))
            runs["pipeline"].append(timed(pipeline, src, detector, Path(tmp) / f"spool{i}"))
            # + audio events on the camera's AAC track, decoded inline from the same demux
            runs["pipeline+audio"].append(timed(pipeline, src, detector, Path(tmp) / f"spool-a{i}", True))
            if not args.no_naive and i == 0:  # slow; one run is enough to show the gap
                runs["naive"].append(timed(naive, src))
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in runs.items() if v}
    result = {
        "cpu": cpu, "seconds_of_video": args.seconds, "input": "1280x720 15 fps H.264 + AAC, gop 2 s",
        "detect": "320x180 gray @ 5 fps",
        "cpu_s": {k: round(v[0], 3) for k, v in med.items()},
        "wall_s": {k: round(v[1], 3) for k, v in med.items()},
        "ratio_pipeline_vs_floor_cpu": round(med["pipeline"][0] / med["floor"][0], 3),
        "ratio_pipeline_vs_floor_wall": round(med["pipeline"][1] / med["floor"][1], 3),
        "ratio_pipeline_audio_vs_floor_cpu": round(med["pipeline+audio"][0] / med["floor"][0], 3),
        "pipeline_output": runs["pipeline"][-1][2],
    }
    if "naive" in med:
        result["ratio_naive_vs_floor_cpu"] = round(med["naive"][0] / med["floor"][0], 3)
    print(f"{'stage':<15} {'cpu s':>8} {'wall s':>8} {'x floor':>8}")
    for k, (c, w) in med.items():
        print(f"{k:<15} {c:>8.3f} {w:>8.3f} {c / med['floor'][0]:>8.3f}")
    print(f"pipeline/floor (cpu) = {result['ratio_pipeline_vs_floor_cpu']}  "
          f"(target <= 1.3, later <= 1.15); output {result['pipeline_output']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
