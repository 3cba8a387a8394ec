"""An unpaired microphone's audio-only clips, driven by the same clip decisions as a camera's."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest

from edge_media.events import ClipDecider, ClipSettings, Event, Transition
from edge_media.service.recording import drive
from recorder import AudioClipRecorder, ClipSidecar, Spool

RATE, BLOCK = 16000, 1600  # 0.1 s blocks, as a microphone delivers them


def test_long_sound_is_cut_at_max_clip_into_contiguous_audio_clips(tmp_path):
    """Defect 12 on the microphone path: an audio-only clip cut at ``max_clip_s`` continues with
    the very next block — no overlap, no gap, no pre-roll — and holds the event still going on."""
    got: list[tuple[Path, ClipSidecar]] = []
    rec = AudioClipRecorder("hall", Spool(tmp_path / "spool"), pre_roll_s=1.0, sample_rate=RATE,
                            model_versions={"audio_events": "t"}, on_clip=lambda p, s: got.append((p, s)))
    decider = ClipDecider(ClipSettings(pre_roll_s=1.0, max_clip_s=4.0))
    alarm = Event("smoke_co_alarm", 0.9, start=2.0, last_seen=2.0)
    rng = np.random.default_rng(1)
    for k in range(150):  # 15 s
        t = k * BLOCK / RATE
        drive("hall", rec, decider, decider.tick(t))
        rec.push((rng.normal(0, 0.1, BLOCK)).astype(np.float32), t, 1_790_000_000.0 + t)
        if k == 25:  # confirmed at 2.5 s, heard from 2.0 s
            drive("hall", rec, decider, decider.feed([Transition("start", alarm)]))
        if k == 120:  # over at 12.0 s
            ended = Event("smoke_co_alarm", 0.9, start=2.0, last_seen=11.0, end=12.0)
            drive("hall", rec, decider, decider.feed([Transition("end", ended)]))
    drive("hall", rec, decider, decider.close(15.0))

    spans = []
    for path, side in sorted(got, key=lambda c: c[1].stream_start):
        with av.open(str(path)) as clip:
            samples = sum(f.samples for f in clip.decode(audio=0))
        assert samples / RATE == pytest.approx(side.duration_s, abs=0.15)  # AAC pads its last frame
        spans.append((side.stream_start, side.stream_start + side.duration_s))
        assert [e.label for e in side.events] == ["smoke_co_alarm"]
    assert spans[0][0] == pytest.approx(1.0)  # pre-roll of the first clip only
    assert spans[-1][1] >= 12.0
    for (_, end), (nxt, _) in pairwise(spans):
        assert nxt == pytest.approx(end, abs=1e-6)  # contiguous: neither overlap nor gap
    assert all(b - a <= 4.0 + BLOCK / RATE + 1e-6 for a, b in spans)
    assert len(spans) == 3
