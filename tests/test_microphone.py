"""Microphones through the service: audio-only clips, and pairing with a camera's clip.

The capture device is the only thing replaced: ``FileMic`` plays a real encoded file through the
same interface as ``MicSource`` (start/read/stop/start_wall), at real time like a device would.
"""

from __future__ import annotations

import json
import time

import av
import pytest

from edge_media.audio import AudioFileSource
from edge_media.config import parse_config
from edge_media.service.hub import Service
from edge_media.tools.samples import VideoSpec, make_video

from audio_fixtures import alarm_scene, encode_audio


class FileMic:
    def __init__(self, path, *, realtime: bool) -> None:
        self.path, self.realtime = path, realtime
        self.start_wall: float | None = None
        self.ended = False

    def start(self) -> None:
        self.blocks = iter(AudioFileSource(self.path, block_samples=1600))
        self.start_wall = time.time()

    def read(self, timeout=None):
        try:
            block = next(self.blocks)
        except StopIteration:
            self.ended = True
            return None
        if self.realtime:
            time.sleep(max(0.0, self.start_wall + block.time - time.time()))
        return block

    def stop(self) -> None:
        pass


@pytest.fixture(scope="module")
def alarm_wav(tmp_path_factory):
    samples, onset = alarm_scene(16000, silence_s=1.0, lead_noise_s=1.0, alarm_s=4.0, tail_s=4.0)
    return encode_audio(tmp_path_factory.mktemp("mic") / "alarm.flac", samples, 16000), onset


def service_with_mic(tmp_path, cameras: str, mic: str, source: FileMic) -> Service:
    text = f'[service]\ndata_dir = "{tmp_path / "data"}"\n[recording]\npre_roll_s = 2.0\npost_roll_s = 1.0\n'
    svc = Service(parse_config(text + cameras + mic))
    svc.mics = [svc._mic(svc.config.microphones[0], source=source)]  # the device is the only stand-in
    return svc


def sidecars(tmp_path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (tmp_path / "data" / "store" / "objects").rglob("*.json")]


def test_unpaired_microphone_records_an_audio_only_clip(tmp_path, alarm_wav):
    path, onset = alarm_wav
    svc = service_with_mic(tmp_path, "", '[[microphones]]\nname = "hall"\nowner = "alice"\n',
                           FileMic(path, realtime=True))
    svc.run()
    svc.close()
    [sc] = sidecars(tmp_path)
    assert sc["camera_hash"] == svc.ctx.camera_hash("hall") and sc["audio_codec"] == "aac" and sc["video_codec"] == ""
    [ev] = sc["events"]
    assert ev["label"] == "smoke_co_alarm" and abs(ev["start"] - onset) <= 1.0
    assert sc["stream_start"] <= max(0.0, ev["start"] - 2.0) + 0.01, "audio pre-roll"
    clip = next((tmp_path / "data" / "store" / "objects").rglob("*.mp4"))
    with av.open(str(clip)) as c:
        assert not c.streams.video and c.streams.audio[0].codec_context.name == "aac"
        samples = sum(f.samples for f in c.decode(audio=0))
    assert samples / 16000 == pytest.approx(sc["duration_s"], abs=0.2) and sc["duration_s"] > 4.0


def test_paired_microphone_records_the_cameras_clip(tmp_path, alarm_wav):
    path, onset = alarm_wav
    video = make_video(tmp_path / "cam.mp4", VideoSpec(duration_s=10, noise_sigma=2.0))
    cams = f'[[cameras]]\nname = "hallcam"\nrecord_url = "{video}"\nrealtime = true\n'
    svc = service_with_mic(tmp_path, cams, '[[microphones]]\nname = "hall"\ncamera = "hallcam"\n',
                           FileMic(path, realtime=True))
    svc.run()
    svc.close()
    [sc] = sidecars(tmp_path)
    assert sc["camera_hash"] == svc.ctx.camera_hash("hallcam") and sc["width"] == 640, \
        "the camera's video clip holds the audio event"
    [ev] = sc["events"]
    assert ev["label"] == "smoke_co_alarm" and abs(ev["start"] - onset) <= 1.0
    assert sc["stream_start"] <= max(0.0, ev["start"] - 2.0) + 0.1, "video pre-roll from the camera's ring"
