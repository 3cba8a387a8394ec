"""CameraPipeline's clip decisions on real packets: restriction and paired-microphone events."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_media.detect import MotionSettings
from edge_media.events import Event, EventTracker, TrackerSettings, Transition
from edge_media.service.camera import CameraPipeline
from edge_media.sources import Connected, Disconnected
from recorder import CameraRecorder, ClipSidecar, Spool

from media import demux


def pipeline(tmp_path: Path, got: list) -> CameraPipeline:
    rec = CameraRecorder("porch", Spool(tmp_path / "spool"), pre_roll_s=2.0, ring_seconds=4.0,
                         ring_max_bytes=64 << 20, model_versions={"motion": "7"},
                         on_clip=lambda p, s: got.append((p, s)))
    return CameraPipeline("porch", EventTracker("porch", "motion", TrackerSettings(post_roll_s=1.0)),
                          MotionSettings(), rec)


def bark(start: float, end: float | None = None) -> Event:
    return Event("dog_bark", 0.8, start=start, last_seen=start if end is None else end - 1.0, end=end)


@pytest.mark.parametrize("applied_first", [True, False], ids=["restriction-applied", "same-moment"])
def test_paired_microphone_event_while_restricted_records_nothing(source: Path, tmp_path: Path,
                                                                  applied_first: bool) -> None:
    """Regression: with the camera restricted by its owner, a paired microphone's event still
    opened a clip — filled from the pre-roll ring with footage from before the restriction, and
    published at shutdown. A restriction records nothing new, whatever the event's source (also
    when the event was queued in the same instant the restriction arrived)."""
    got: list[tuple[Path, ClipSidecar]] = []
    pipe = pipeline(tmp_path, got)
    with demux(source) as (streams, packets):
        pipe.handle(Connected(streams, 640, 360, 1))
        for mp in (p for p in packets if p.time < 5.0):
            pipe.handle(mp)
        pipe.request_restricted(True)
        rest = [p for p in packets if p.time >= 5.0]
        if applied_first:
            pipe.handle(rest.pop(0))  # the reader thread applies the restriction
        pipe.queue([Transition("start", bark(5.2))])  # the microphone thread goes on hearing
        for mp in rest:
            pipe.handle(mp)
        pipe.queue([Transition("end", bark(5.2, 7.0))])
        pipe.handle(Disconnected("end of file", 10.0))
    assert got == [] and list(pipe.recorder.spool.tmp_dir.iterdir()) == []


def test_paired_microphone_event_records_a_clip_with_pre_roll(source: Path, tmp_path: Path) -> None:
    """The same event without the restriction: one clip, pre-roll from the ring, the event in it."""
    got: list[tuple[Path, ClipSidecar]] = []
    pipe = pipeline(tmp_path, got)
    with demux(source) as (streams, packets):
        pipe.handle(Connected(streams, 640, 360, 1))
        for mp in packets:
            if mp.time >= 5.0 and not pipe.recorder.recording and not got:
                pipe.queue([Transition("start", bark(4.5))])
            if mp.time >= 7.0 and pipe.recorder.recording:
                pipe.queue([Transition("end", bark(4.5, 7.0))])
            pipe.handle(mp)
        pipe.handle(Disconnected("end of file", 10.0))
    [(_, side)] = got
    assert side.stream_start == 2.0  # the keyframe at or before 4.5 - 2.0 s
    assert side.stream_end >= 7.0 and [e.label for e in side.events] == ["dog_bark"]
