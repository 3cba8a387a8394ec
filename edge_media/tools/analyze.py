"""Synchronous run of the pipeline over one file, as fast as it decodes.

Used by ``edge-media analyze``, the benchmarks and tests: the same pipeline objects as the
service, driven from one thread with no queues, so results are exact and repeatable. Video goes
through motion detection; the audio track (or an audio-only file) through the audio-event model.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from pydantic import BaseModel, ValidationError

from recorder import CameraRecorder

from ..audio import AudioDetector, AudioEventModel, AudioFileSource, WindowResult
from ..audio.setup import load_audio_model, new_logic, new_windower
from ..config import AudioConfig, CameraConfig, EventsConfig, RecordingConfig
from ..config.loader import describe_errors
from ..detect import MotionDetector, MotionSettings
from ..errors import UsageError
from ..events import Event, EventTracker, TrackerSettings
from ..service.camera import (
    AudioChain,
    AudioWindows,
    CameraPipeline,
    audio_batch,
    detect_batch,
)
from ..sources import Disconnected, SourceSpec, SourceStats, VideoSource

AUDIO_BLOCK_SAMPLES = 16000 * 8  # 8 s per block: ~16 windows per model call when analysing files


@dataclass
class AnalyzeOptions:
    detect_width: int = 320
    detect_fps: float = 5.0
    motion: MotionSettings = field(default_factory=MotionSettings)
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    audio: AudioConfig | None = field(default_factory=AudioConfig)  # None: video only


# analyze's options are config fields: they are checked by the same models, so their bounds cannot drift.
_OPTION_FIELDS: dict[str, tuple[type[BaseModel], str]] = {
    "--detect-width": (CameraConfig, "detect_width"),
    "--fps": (CameraConfig, "detect_fps"),
    "--sensitivity": (CameraConfig, "sensitivity"),
    "--min-frames": (EventsConfig, "min_motion_frames"),
    "--post-roll": (RecordingConfig, "post_roll_s"),
}
# Placeholders for the model's required fields; their errors are never reported.
_REQUIRED: dict[type[BaseModel], dict[str, str]] = {CameraConfig: {"name": "analyze", "record_url": "analyze.mp4"}}


def check_options(values: dict[str, object]) -> None:
    """Validate command-line ``{"--option": value}`` against the config field each one stands for; raises
    UsageError naming every bad option, e.g. ``--detect-width: must be even (got 33)``."""
    problems = []
    for option, value in values.items():
        model, name = _OPTION_FIELDS[option]
        try:
            model.model_validate({**_REQUIRED.get(model, {}), name: value})
        except ValidationError as exc:
            # Only this field's errors: e.g. a long --post-roll would trip RecordingConfig's max_clip_s check.
            problems += [f"{option}: {p[len(name) + 2:]}" for p in describe_errors(exc.errors())
                         if p.startswith(f"{name}: ")]
    if problems:
        raise UsageError("; ".join(problems))


@dataclass
class AnalysisReport:
    path: str
    duration_s: float
    elapsed_s: float
    events: list[Event]
    stats: SourceStats
    motion_frames: int
    model_version: str
    motion_trace: list[tuple[float, float]] = field(default_factory=list)  # (time, changed fraction)
    audio_labels: tuple[str, ...] = ()
    audio_trace: list[tuple[float, np.ndarray | None]] = field(default_factory=list)  # None: silent
    audio_model_version: str | None = None
    audio_window_s: float = 0.975
    audio_windows: int = 0
    audio_inferences: int = 0

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
            "audio_model": self.audio_model_version,
            "audio_windows": self.audio_windows,
            "audio_windows_inferred": self.audio_inferences,
            "events": [
                {"label": e.label, "start_s": round(e.start, 3), "end_s": round(e.until, 3),
                 "score": round(e.score, 4)}
                for e in sorted(self.events, key=lambda e: e.start)
            ],
        }


@dataclass(frozen=True)
class _Probe:
    duration_s: float  # 0 when unknown (e.g. truncated files)
    has_video: bool
    has_audio: bool


def _probe(path: str | Path) -> _Probe:
    """One look at the container: duration and which tracks it has."""
    try:
        with av.open(str(path)) as c:
            return _Probe(float(c.duration or 0) / av.time_base, bool(c.streams.video), bool(c.streams.audio))
    except av.FFmpegError:
        return _Probe(0.0, True, False)  # let the video source report the real error


def analyze_file(path: str | Path, options: AnalyzeOptions | None = None, *,
                 detector: MotionDetector | None = None, recorder: CameraRecorder | None = None,
                 audio_model: AudioEventModel | None = None, progress: bool = False) -> AnalysisReport:
    """Detect (and, with a recorder, record) over a file; raises SourceError/AudioSourceError if
    unreadable. Audio events are analysed when the file has audio and ``options.audio`` is set."""
    opts = options or AnalyzeOptions()
    probe = _probe(path)
    start = time.perf_counter()
    model = None
    if probe.has_audio and opts.audio is not None and opts.audio.enabled:
        model = audio_model or load_audio_model(opts.audio)
    if probe.has_video:  # one demux pass: the camera's audio track is decoded inline, as in the service
        report = _analyze_video(path, probe.duration_s, opts, detector, recorder, progress, model)
    else:
        report = AnalysisReport(str(path), probe.duration_s, 0.0, [], SourceStats(), 0, "-")
        if model is not None and opts.audio is not None:
            _analyze_audio(path, opts.audio, model, report)
    report.elapsed_s = time.perf_counter() - start
    return report


def _analyze_video(path: str | Path, total: float, opts: AnalyzeOptions, detector: MotionDetector | None,
                   recorder: CameraRecorder | None, progress: bool,
                   audio_model: AudioEventModel | None) -> AnalysisReport:
    detector = detector or MotionDetector(threads=1)
    name = recorder.camera if recorder is not None else Path(path).stem
    audio = None
    if audio_model is not None and opts.audio is not None:
        audio = AudioChain(new_windower(audio_model, opts.audio), new_logic(name, audio_model, opts.audio))
    pipe = CameraPipeline(name, EventTracker(name, "motion", opts.tracker), opts.motion, recorder, audio=audio)
    source = VideoSource(SourceSpec(str(path), record=recorder is not None or audio is not None,
                                    detect_width=opts.detect_width, detect_fps=opts.detect_fps), name=name)
    report = AnalysisReport(str(path), total, 0.0, pipe.events, source.stats, 0, detector.model_version)
    with (_progress(total) if progress else nullcontext()) as pbar:
        for ev in source:
            if isinstance(ev, Disconnected) and (tail := pipe.audio_tail()) is not None:
                assert audio_model is not None  # only an audio chain yields windows
                report.audio_trace += audio_batch(audio_model, [tail])[0]
            out = pipe.handle(ev)
            if isinstance(out, AudioWindows):
                assert audio_model is not None
                [results] = audio_batch(audio_model, [out])
                report.audio_trace += results
            elif out is not None:
                [result] = detect_batch(detector, [(pipe, out)])
                report.motion_trace.append((result.time, result.score))
                if pbar is not None:
                    pbar.update(max(0.0, min(out.time, total) - pbar.n))
        pipe.finish()
    report.motion_frames = pipe.motion_frames
    report.duration_s = total or (source.stats.frames_detect / opts.detect_fps)
    if audio_model is not None:
        _describe_audio(report, audio_model)
    return report


def _analyze_audio(path: str | Path, cfg: AudioConfig, model: AudioEventModel, report: AnalysisReport) -> None:
    name = Path(path).stem
    detector = AudioDetector(model, new_logic(name, model, cfg), new_windower(model, cfg))
    t = 0.0

    def record(results: list[WindowResult]) -> None:
        for res in results:
            report.audio_trace.append((res.time, res.scores))
            report.events += [tr.event for tr in res.transitions if tr.kind == "end"]

    for block in AudioFileSource(path, block_samples=AUDIO_BLOCK_SAMPLES):
        record(detector.push(block.samples, block.time))
        t = block.time + len(block.samples) / model.info.sample_rate
    tail, ends = detector.end(t)
    record(tail)
    report.events += [tr.event for tr in ends]
    report.duration_s = max(report.duration_s, t)
    _describe_audio(report, model)


def _describe_audio(report: AnalysisReport, model: AudioEventModel) -> None:
    report.audio_labels, report.audio_model_version = tuple(model.labels), model.version
    report.audio_window_s = model.info.window_samples / model.info.sample_rate
    report.audio_windows = len(report.audio_trace)
    report.audio_inferences = sum(1 for _, s in report.audio_trace if s is not None)


def _progress(total: float):
    from tqdm import tqdm

    return tqdm(total=round(total, 1), unit="s", unit_scale=True, desc="analyze", leave=False,
                bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]")
