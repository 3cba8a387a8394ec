"""Synchronous run of the pipeline over one file, as fast as it decodes.

Used by ``edge-media analyze``, the demo's sanity checks and the benchmarks: the same pipeline
objects as the service, driven from one thread with no queues, so results are exact and
repeatable.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import av

from recorder import CameraRecorder

from .detect import MotionDetector, MotionSettings
from .events import Event, EventTracker, TrackerSettings
from .pipeline import CameraPipeline, detect_batch
from .sources import SourceSpec, SourceStats, VideoSource


@dataclass
class AnalyzeOptions:
    detect_width: int = 320
    detect_fps: float = 5.0
    motion: MotionSettings = field(default_factory=MotionSettings)
    tracker: TrackerSettings = field(default_factory=TrackerSettings)


@dataclass
class AnalysisReport:
    path: str
    duration_s: float
    elapsed_s: float
    events: list[Event]
    stats: SourceStats
    motion_frames: int
    model_version: str

    @property
    def speed(self) -> float:
        """Times faster than real time."""
        return self.duration_s / self.elapsed_s if self.elapsed_s > 0 else float("inf")

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "duration_s": round(self.duration_s, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "speed_x_realtime": round(self.speed, 1),
            "frames_decoded": self.stats.frames_decoded,
            "frames_detected": self.stats.frames_detect,
            "decode_errors": self.stats.decode_errors,
            "motion_frames": self.motion_frames,
            "motion_model": self.model_version,
            "events": [
                {"label": e.label, "start_s": round(e.start, 3), "end_s": round(e.end or e.last_seen, 3),
                 "score": round(e.score, 4)}
                for e in self.events
            ],
        }


def media_duration(path: str | Path) -> float:
    """Container duration in seconds (0 when unknown, e.g. truncated files)."""
    try:
        with av.open(str(path)) as c:
            return float(c.duration or 0) / av.time_base
    except av.FFmpegError:
        return 0.0


def analyze_file(path: str | Path, options: AnalyzeOptions | None = None, *,
                 detector: MotionDetector | None = None, recorder: CameraRecorder | None = None,
                 progress: bool = False) -> AnalysisReport:
    """Detect (and, with a recorder, record) over a file; raises SourceError if unreadable."""
    opts = options or AnalyzeOptions()
    detector = detector or MotionDetector(threads=1)
    name = recorder.camera if recorder is not None else Path(path).stem
    pipe = CameraPipeline(name, EventTracker(name, "motion", opts.tracker), opts.motion, recorder)
    source = VideoSource(SourceSpec(str(path), record=recorder is not None, detect_width=opts.detect_width,
                                    detect_fps=opts.detect_fps), name=name)
    total = media_duration(path)
    bar = _progress(total) if progress else nullcontext()
    start = time.perf_counter()
    with bar as pbar:
        for ev in source:
            frame = pipe.handle(ev)
            if frame is None:
                continue
            detect_batch(detector, [(pipe, frame)])
            if pbar is not None:
                pbar.update(max(0.0, min(frame.time, total) - pbar.n))
        pipe.finish()
    elapsed = time.perf_counter() - start
    duration = total or (source.stats.frames_detect / opts.detect_fps)
    return AnalysisReport(str(path), duration, elapsed, pipe.events, source.stats, pipe.motion_frames,
                          detector.model_version)


def _progress(total: float):
    from tqdm import tqdm

    return tqdm(total=round(total, 1), unit="s", unit_scale=True, desc="analyze", leave=False,
                bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]")
