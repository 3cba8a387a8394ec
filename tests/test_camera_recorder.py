"""CameraRecorder driven like the pipeline drives it, with real H.264 + AAC packets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recorder import CameraRecorder, ClipSidecar, Event, Spool

from media import demux, read_clip


class Clips:
    """on_clip sink: remembers what the recorder delivered."""

    def __init__(self) -> None:
        self.got: list[tuple[Path, ClipSidecar]] = []

    def __call__(self, path: Path, sidecar: ClipSidecar) -> None:
        self.got.append((path, sidecar))


def recorder(tmp_path: Path, on_clip) -> CameraRecorder:
    return CameraRecorder("porch", Spool(tmp_path / "spool"), pre_roll_s=2.0, ring_seconds=4.0,
                          ring_max_bytes=64 << 20, model_versions={"motion": "7"}, on_clip=on_clip)


def test_clip_with_pre_roll_from_ring(source: Path, tmp_path: Path) -> None:
    clips = Clips()
    rec = recorder(tmp_path, clips)
    with demux(source) as (streams, packets):
        rec.set_streams(streams)
        for mp in packets:
            rec.on_packet(mp)
            if mp.time >= 5.0 and not rec.recording and not clips.got:
                rec.start(3.0, [Event("person", 0.7, start=5.0, last_seen=5.0)])
            if mp.time >= 6.0 and rec.recording:
                rec.update(Event("person", 0.93, start=5.0, last_seen=6.0, end=6.9))
            if mp.time >= 6.9 and rec.recording:
                rec.stop(7.0)
        source_video = [bytes(mp.packet) for mp in packets if mp.is_video and 2.0 <= mp.time <= 7.0]
    assert not rec.recording
    [(path, side)] = clips.got
    assert side.stream_start == pytest.approx(2.0)  # newest keyframe <= 5.0 - 2.0 s pre-roll
    assert side.stream_end >= 7.0 and side.duration_s == pytest.approx(5.0 + 1 / 15, abs=0.05)
    assert side.events == [Event("person", 0.93, start=5.0, last_seen=6.0, end=6.9)]
    assert side.camera == "porch" and side.model_versions == {"motion": "7"} and not side.recovered
    assert (side.video_codec, side.audio_codec, side.width, side.height) == ("h264", "aac", 640, 360)
    assert side.wall_start.startswith("2026-") and side.wall_start.endswith("Z")
    info = read_clip(path)
    assert [b for _, b in info["video"]] == source_video  # bit-exact, no re-encode
    assert info["frames"] == len(source_video) == 76
    assert info["audio_codec"] == "aac" and info["audio"][-1][0] == pytest.approx(5.0, abs=0.1)
    assert rec.spool.ready() == [(path, side)]


def test_events_extend_stop_in_past_and_reconnect(source: Path, tmp_path: Path) -> None:
    clips = Clips()
    rec = recorder(tmp_path, clips)
    with demux(source) as (streams, packets):
        rec.set_streams(streams)
        for mp in (p for p in packets if p.time < 3.0):
            rec.on_packet(mp)
        rec.start(0.5, [Event("motion", 0.5, start=2.5, last_seen=2.5)])
        rec.stop(3.5)  # a second event arrives before the stop takes effect ...
        rec.start(0.9, [Event("bark", 0.8, start=2.9, last_seen=2.9)])  # ... and keeps the clip going
        for mp in (p for p in packets if 3.0 <= p.time < 5.0):
            rec.on_packet(mp)
        assert rec.recording
        rec.stop(4.0)  # already past: closes at once
        assert not rec.recording and len(clips.got) == 1
        rec.start(2.9, [Event("motion", 0.6, start=4.9, last_seen=4.9)])
        for mp in (p for p in packets if 5.0 <= p.time < 6.0):
            rec.on_packet(mp)
        rec.set_streams(streams)  # reconnect: the open clip is finished, the ring emptied
        assert not rec.recording and len(rec.ring) == 0
    first, second = clips.got[0][1], clips.got[1][1]
    assert [e.label for e in first.events] == ["motion", "bark"]
    assert first.stream_start == pytest.approx(0.0) and first.stream_end == pytest.approx(5.0, abs=0.1)
    assert second.stream_start == pytest.approx(2.0) and second.stream_end == pytest.approx(6.0, abs=0.1)
    assert first.clip_id < second.clip_id


def test_failures_are_logged_not_raised(source: Path, tmp_path: Path, caplog) -> None:
    def broken_sink(path: Path, sidecar: ClipSidecar) -> None:
        raise RuntimeError("uploader is down")

    rec = recorder(tmp_path, broken_sink)
    with demux(source) as (streams, packets):
        rec.set_streams(streams)
        for mp in (p for p in packets if p.time < 3.0):
            rec.on_packet(mp)
        rec.start(0.0, [Event("motion", 0.5, start=2.0, last_seen=2.0)])
        rec.close()  # on_clip raises: logged, the clip stays in ready/
        assert len(rec.spool.ready()) == 1 and "on_clip failed" in caplog.text
        shutil.rmtree(rec.spool.tmp_dir)  # the spool disappears under us (unmounted card)
        rec.start(0.5, [Event("motion", 0.5, start=2.5, last_seen=2.5)])
        assert not rec.recording and "writing clip" in caplog.text  # the muxer opens the file lazily
        rec.on_packet(packets[-1])
        rec.stop(0.0)


def test_no_keyframe_no_clip(source: Path, tmp_path: Path) -> None:
    clips = Clips()
    rec = recorder(tmp_path, clips)
    with demux(source) as (streams, packets):
        rec.set_streams(streams)
        # ring empty: the clip opens and waits for a keyframe
        rec.start(-1.5, [Event("motion", 0.5, start=0.5, last_seen=0.5)])
        for mp in (p for p in packets if 0.5 < p.time < 1.5):
            rec.on_packet(mp)
        rec.close()
    assert clips.got == [] and list(rec.spool.tmp_dir.iterdir()) == []
