"""Long activity through the real recorder: clips cut at ``max_clip_s`` continue without overlap."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import av
import pytest

from edge_media.detect import MotionDetector
from edge_media.events import TrackerSettings
from edge_media.tools.analyze import AnalyzeOptions, analyze_file
from recorder import CameraRecorder, ClipSidecar, Spool

from media import MovingBox, VideoSpec, make_video

FPS, GOP_FRAMES = 15, 15
GOP_S = GOP_FRAMES / FPS
MAX_CLIP_S, PRE_ROLL_S = 6.0, 3.0


def clip_span(path: Path, side: ClipSidecar) -> tuple[float, float]:
    """Stream times of the first frame and of the end of the last frame, decoded with PyAV."""
    with av.open(str(path)) as clip:
        times = [float(f.pts * f.time_base) for f in clip.decode(video=0)]
    assert times and times[0] == pytest.approx(0.0, abs=1e-6)
    return side.stream_start + times[0], side.stream_start + times[-1] + 1 / FPS


def test_max_clip_continuations_neither_overlap_nor_exceed_max_clip(tmp_path):
    """Regression (issue 9, defect 12): a clip cut at ``max_clip_s`` was continued by a new clip
    with its own pre-roll, so consecutive clips overlapped by several seconds, and every clip was
    longer than ``max_clip_s`` (pre-roll + max_clip_s + detection lag). A continuation must start at
    the keyframe where the previous clip ended: no overlap, no gap over one GOP, and no clip longer
    than ``max_clip_s`` + one GOP."""
    spec = VideoSpec(width=320, height=180, fps=FPS, gop=GOP_FRAMES, duration_s=34.0,
                     boxes=[MovingBox(4.0, 30.0, speed=0.1)])
    video = make_video(tmp_path / "long.mp4", spec)
    got: list[tuple[Path, ClipSidecar]] = []
    recorder = CameraRecorder("yard", Spool(tmp_path / "spool"), pre_roll_s=PRE_ROLL_S,
                              ring_seconds=PRE_ROLL_S + 6, ring_max_bytes=64 << 20,
                              model_versions={"motion": "t"}, on_clip=lambda p, s: got.append((p, s)))
    opts = AnalyzeOptions(tracker=TrackerSettings(post_roll_s=2.0, max_clip_s=MAX_CLIP_S), audio=None)
    report = analyze_file(video, opts, detector=MotionDetector(threads=1), recorder=recorder)

    assert report.events and min(e.start for e in report.events) == pytest.approx(4.0, abs=0.5)
    spans = sorted(clip_span(p, s) for p, s in got)
    assert len(spans) >= 4  # ~3 s pre-roll + 26 s of motion + 2 s post-roll, cut every 6 s
    assert spans[0][0] <= 4.0 - PRE_ROLL_S + 1e-6  # the first clip keeps its pre-roll
    assert spans[-1][1] >= 30.0  # ... and the last one the end of the activity
    for (first, last), (nxt, _) in pairwise(spans):
        assert nxt >= last - 1e-6, f"clips overlap: [{first:.2f}, {last:.2f}] then {nxt:.2f}"
        assert nxt - last <= GOP_S + 1e-6, f"gap of {nxt - last:.2f} s between clips"
    for first, last in spans:
        assert last - first <= MAX_CLIP_S + GOP_S + 1e-6, f"clip [{first:.2f}, {last:.2f}] too long"
    carried = [s for _, s in sorted(got, key=lambda c: c[1].stream_start)][1:]
    assert all(any(e.start < s.stream_start for e in s.events) for s in carried[:-1])  # the event goes on
