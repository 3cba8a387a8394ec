"""Power cut mid-clip: a recorder killed with SIGKILL in a real child process leaves a clip that
recovery salvages with its fragments and its events."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from recorder import AudioClipRecorder, Event, Spool

from media import VideoSpec, make_video
from record_child import record_then_kill

FPS, GOP = 12, 24  # a keyframe every 2 s


@pytest.fixture(scope="module")
def low_bitrate(tmp_path_factory) -> Path:
    """640x360 12 fps, a static scene with a little AAC: ~60 kB/s, one 2 s fragment < 256 KiB."""
    spec = VideoSpec(width=640, height=360, fps=FPS, gop=GOP, duration_s=12.0, audio=True)
    return make_video(tmp_path_factory.mktemp("cut") / "low.mp4", spec)


@pytest.mark.parametrize("keyframes", [2, 4])
def test_sigkill_mid_clip_keeps_completed_fragments_and_events(low_bitrate: Path, tmp_path: Path,
                                                               keyframes: int) -> None:
    """Issue 9 defect 7: the fragmented-MP4 output stayed in its 256 KiB I/O buffer, so after a
    SIGKILL the temp file held only ``ftyp`` and recovery deleted it ("no readable video"); and a
    recovered clip had an empty ``events`` list."""
    spool_dir = tmp_path / "spool"
    record_then_kill(low_bitrate, spool_dir, keyframes)  # killed just after the keyframe at 2 * (keyframes - 1) s
    done = keyframes - 1  # fragments completed before the kill
    [tmp_clip] = list((spool_dir / "tmp").glob("*.mp4"))
    assert tmp_clip.stat().st_size > 50_000 * done, "completed fragments reached the file before the kill"

    spool = Spool(spool_dir)
    [path] = spool.recover()
    [(clip, side)] = spool.ready()
    assert clip == path and side.recovered and side.camera == "porch"
    with av.open(str(clip)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= done * GOP, "every fragment completed before the kill is playable"
    assert side.duration_s >= done * GOP / FPS - 0.1
    assert side.events == [Event("motion", 0.9, 0.5, 1.0), Event("scream", 0.8, 1.5, 1.5)]
    assert side.model_versions == {"motion": "m1"} and side.stream_start == 0.0


def test_audio_only_clip_reaches_disk_fragment_by_fragment(tmp_path: Path) -> None:
    """Defect 7 for microphones: ``frag_keyframe`` never cuts an audio-only MP4, so the whole clip
    stayed in memory until close and a crash lost all of it, events included."""
    spool = Spool(tmp_path / "spool")
    rec = AudioClipRecorder("hall-mic", spool, pre_roll_s=1.0, model_versions={"audio": "a1"},
                            on_clip=lambda *_: pytest.fail("the clip must still be open"))
    rate, block = 16000, 1600
    rng = np.random.default_rng(1)
    for i in range(60):  # 6 s of quiet noise; the event starts at 2 s
        t = i * block / rate
        rec.push((rng.random(block, dtype=np.float32) - 0.5) * 0.1, t, 1_790_000_000.0 + t)
        if i == 20:
            rec.start(2.0 - rec.pre_roll_s, [Event("dog_bark", 0.8, 2.0, 2.0)])
    # A crash now: only what reached the file survives. Recover a copy of the spool as it is.
    crashed = tmp_path / "after-crash"
    shutil.copytree(spool.root, crashed)
    recovered = Spool(crashed)
    [path] = recovered.recover()
    [(_, side)] = recovered.ready()
    with av.open(str(path)) as container:
        seconds = sum(f.samples for f in container.decode(audio=0)) / container.streams.audio[0].sample_rate
    assert seconds >= 3.0, "all but the last second of the open clip is on disk"
    assert side.events == [Event("dog_bark", 0.8, 2.0, 2.0)] and side.camera == "hall-mic"
