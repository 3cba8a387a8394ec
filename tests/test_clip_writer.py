"""ClipWriter: remuxing real H.264 + AAC packets into fragmented MP4, bit-exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder import ClipWriter, MediaPacket, WrittenClip

from media import WALL0, demux, make_source, read_clip


def write_range(path: Path, streams, packets: list[MediaPacket], t0: float, t1: float) -> WrittenClip:
    writer = ClipWriter(path, streams)
    for mp in packets:
        if t0 <= mp.time <= t1:
            writer.write(mp)
    return writer.close()


def test_clip_is_bit_exact_remux(source: Path, tmp_path: Path) -> None:
    with demux(source) as (streams, packets):
        src_video = [bytes(mp.packet) for mp in packets if mp.is_video and 3.9 <= mp.time <= 8.0]
        src_extradata = next(s for s in streams.values() if s.type == "video").codec_context.extradata
        # Starting at 3.9 s: the audio and non-key video before the 4 s keyframe must be skipped.
        written = write_range(tmp_path / "clip.mp4", streams, packets, 3.9, 8.0)
    assert written.first_time == pytest.approx(4.0)
    assert written.first_wall == pytest.approx(WALL0 + 4.0)
    assert written.last_time == pytest.approx(8.0, abs=0.05)
    assert written.duration_s == pytest.approx(4.0 + 1 / 15, abs=0.05)
    assert (written.video_codec, written.audio_codec, written.width, written.height) == ("h264", "aac", 640, 360)
    info = read_clip(written.path)
    assert info["codec"] == "h264" and (info["width"], info["height"]) == (640, 360)
    assert info["extradata"] == src_extradata
    assert info["audio_codec"] == "aac" and len(info["audio"]) > 150  # ~4 s of 1024-sample AAC @48k
    assert [b for _, b in info["video"]] == src_video[1:]  # src_video[0] is the 3.93 s non-key frame
    assert info["frames"] == len(src_video) - 1 == 61
    assert info["video"][0][0] == 0.0 and info["frame_times"][0] == 0.0
    assert min(t for t, _ in info["audio"]) >= 0.0
    assert written.size_bytes == written.path.stat().st_size and len(written.sha256) == 64


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_overlapping_clips_from_the_same_packets(tmp_path: Path, suffix: str) -> None:
    """Regression: muxing rebases a PyAV packet in place; the second clip must not inherit that."""
    src = make_source(tmp_path, suffix)
    with demux(src) as (streams, packets):
        a = ClipWriter(tmp_path / "a.mp4", streams)
        b = ClipWriter(tmp_path / "b.mp4", streams)
        for mp in packets:
            if 2.0 <= mp.time <= 7.0:
                a.write(mp)
            if 4.0 <= mp.time <= 9.0:
                b.write(mp)
        wa, wb = a.close(), b.close()
        expect = {name: [bytes(mp.packet) for mp in packets if mp.is_video and lo <= mp.time <= hi]
                  for name, lo, hi in (("a", 2.0, 7.0), ("b", 4.0, 9.0))}
    for written, name, start in ((wa, "a", 2.0), (wb, "b", 4.0)):
        info = read_clip(written.path)
        assert written.first_time == pytest.approx(start)
        assert [b for _, b in info["video"]] == expect[name]
        assert info["frames"] == 76
        steps = [b - a for a, b in zip(info["frame_times"], info["frame_times"][1:])]
        # .mkv stores milliseconds, so a 1/15 s step is 66 or 67 ms there
        assert info["frame_times"][0] == 0.0 and all(abs(s - 1 / 15) < 0.002 for s in steps)
        audio_times = [t for t, _ in info["audio"]]
        assert 0.0 <= audio_times[0] < 0.05 and audio_times[-1] == pytest.approx(5.0, abs=0.1)


def test_abort_removes_file_and_skips_until_keyframe(source: Path, tmp_path: Path) -> None:
    with demux(source) as (streams, packets):
        writer = ClipWriter(tmp_path / "x.mp4", streams)
        non_key = [mp for mp in packets if not mp.is_keyframe and 0.1 < mp.time < 1.9]
        assert not any(writer.write(mp) for mp in non_key)
        assert not writer.started
        writer.abort()
    assert not (tmp_path / "x.mp4").exists()
