"""Spool layout, sidecar schema and crash recovery, with real fragmented MP4 clips."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import av
import pytest

from recorder import ClipMeta, ClipSidecar, ClipWriter, Event, Spool, WrittenClip, new_clip_id
from recorder.sidecar import iso_utc

from media import WALL0, demux


def write_clip(spool: Spool, source: Path, clip_id: str, t0: float = 2.0, t1: float = 9.0) -> WrittenClip:
    with demux(source) as (streams, packets):
        writer = ClipWriter(spool.tmp_path(clip_id), streams)
        spool.write_meta(clip_id, ClipMeta(camera="porch", model_versions={"motion": "1"},
                                           wall_start=WALL0 + t0, stream_start=t0))
        for mp in packets:
            if t0 <= mp.time <= t1:
                writer.write(mp)
        return writer.close()


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as clip:
        return sum(1 for _ in clip.decode(video=0))


def sample_sidecar(clip_id: str = "20261129T165600Z-0123abcd") -> ClipSidecar:
    return ClipSidecar(
        clip_id=clip_id, camera="porch", events=[Event("person", 0.91, start=5.0, last_seen=6.0, end=7.5),
                                           Event("bark", 0.6, start=6.0, last_seen=6.5)],
        stream_start=3.0, stream_end=9.0, wall_start="2026-11-29T16:56:00.000Z", wall_end="2026-11-29T16:56:06.000Z",
        duration_s=6.0, size_bytes=1234, sha256="ab" * 32, model_versions={"motion": "3", "audio": "1.2"},
        video_codec="h264", audio_codec=None, width=640, height=360, file=f"{clip_id}.mp4")


def test_sidecar_round_trip_and_atomic_write(tmp_path: Path) -> None:
    side = sample_sidecar()
    assert ClipSidecar.from_json(side.to_json()) == side
    assert json.loads(side.to_json())["schema"] == 1
    path = tmp_path / "x.json"
    side.write_atomic(path)
    side.recovered = True
    side.write_atomic(path)  # overwrite in place
    assert ClipSidecar.read(path) == side
    assert sorted(os.listdir(tmp_path)) == ["x.json"]  # no temp file left behind
    with pytest.raises(ValueError):
        ClipSidecar.from_json(json.dumps({**side.to_dict(), "schema": 99}))


def test_clip_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_clip_id(WALL0 + dt) for dt in (0, 0, 1, 3600)]
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", ids[0])
    assert len(set(ids)) == 4 and ids[2:] == sorted(ids[2:]) and max(ids[:2]) < ids[2]


def test_finalize_ready_remove(source: Path, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    ids = [new_clip_id(WALL0 + 10), new_clip_id(WALL0)]  # created newest first
    for clip_id in ids:
        written = write_clip(spool, source, clip_id)
        side = ClipSidecar.for_clip(written, clip_id=clip_id, camera="porch", events=[], model_versions={})
        path = spool.finalize(written, side)
        assert path == spool.clip_path(clip_id) and not written.path.exists()
    assert [s.clip_id for _, s in spool.ready()] == sorted(ids)  # oldest first
    assert os.listdir(spool.tmp_dir) == []  # meta files gone too
    assert spool.usage_bytes() == sum(p.stat().st_size for p in spool.ready_dir.iterdir())
    clip, side = spool.ready()[0]
    assert side.size_bytes == clip.stat().st_size and side.wall_start.endswith("Z")
    spool.remove(side.clip_id)
    assert [s.clip_id for _, s in spool.ready()] == [max(ids)]


def test_recover_salvages_truncated_fragmented_mp4(source: Path, tmp_path: Path, caplog) -> None:
    spool = Spool(tmp_path / "spool")
    clip_id = new_clip_id(WALL0 + 2)
    written = write_clip(spool, source, clip_id)
    full_frames = decoded_frames(written.path)
    with open(written.path, "r+b") as fh:  # a crash mid-clip: only ~60 % reached the disk
        fh.truncate(int(written.size_bytes * 0.6))
    garbage = spool.tmp_path(new_clip_id(WALL0))
    garbage.write_bytes(os.urandom(50_000))

    recovered = spool.recover()

    assert recovered == [spool.clip_path(clip_id)]
    assert not garbage.exists() and os.listdir(spool.tmp_dir) == []
    [(clip, side)] = spool.ready()
    assert side.recovered and side.camera == "porch" and side.events == []
    assert side.model_versions == {"motion": "1"} and side.stream_start == pytest.approx(2.0)
    assert side.wall_start == iso_utc(WALL0 + 2.0) and side.wall_start.endswith("Z")
    frames = decoded_frames(clip)
    assert 0.4 * full_frames < frames < full_frames
    assert side.duration_s == pytest.approx(frames / 15, abs=0.2)
    assert side.size_bytes == clip.stat().st_size
    assert sum("recovered clip" in r.message for r in caplog.records) == 1
    assert spool.recover() == []  # idempotent


def test_recover_describes_ready_clip_without_sidecar(source: Path, tmp_path: Path) -> None:
    """A crash between the rename into ready/ and the sidecar write."""
    spool = Spool(tmp_path / "spool")
    clip_id = new_clip_id(WALL0)
    written = write_clip(spool, source, clip_id)
    os.replace(written.path, spool.clip_path(clip_id))
    orphan = spool.sidecar_path(new_clip_id(WALL0 - 50))
    sample_sidecar().write_atomic(orphan)  # its clip was removed; the sidecar must go too

    assert spool.recover() == [spool.clip_path(clip_id)]
    [(clip, side)] = spool.ready()
    assert side.recovered and side.camera == "porch" and side.clip_id == clip_id
    assert decoded_frames(clip) == 106
    assert not orphan.exists()


def test_usage_is_counted_while_clips_come_and_go(tmp_path):
    """Bug: ``usage_bytes`` raised FileNotFoundError when a file was renamed or deleted between the directory
    listing and its stat (a clip finishing or uploaded meanwhile), and the clip whose quota check asked was never
    queued. Files churn in a second thread while usage is counted many times."""
    import threading

    spool = Spool(tmp_path / "spool")
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            tmp = spool.tmp_dir / f"c{i % 50}.part"
            tmp.write_bytes(b"x" * 1000)
            final = spool.ready_dir / f"c{i % 50}.mp4"
            tmp.rename(final)
            final.unlink()
            i += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        counts = [spool.usage_bytes() for _ in range(3000)]
    finally:
        stop.set()
        worker.join()
    assert all(0 <= n <= 2000 for n in counts)
