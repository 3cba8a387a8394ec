"""Microphones through the service: audio-only clips, pairing with a camera's clip, the owner's
restriction and the spool quota — the same rules as a camera's.

The capture device is the only thing replaced: ``FileMic`` plays a real encoded file through the
same interface as ``MicSource`` (start/read/stop/start_wall), at real time like a device would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import numpy as np
import pytest

from edge_media.audio import AudioBlock
from edge_media.cli import main
from edge_media.config import load_config, parse_config
from edge_media.service.hub import Service
from edge_media.tools.samples import VideoSpec, make_video
from uploader import audit

from audio_fixtures import FileMic, alarm_scene, encode_audio


@pytest.fixture(scope="module")
def alarm_wav(tmp_path_factory):
    # 6 s: a T3 cycle and the start of the next, what the alarm verifier needs to hear
    samples, onset = alarm_scene(16000, silence_s=1.0, lead_noise_s=1.0, alarm_s=6.0, tail_s=4.0)
    return encode_audio(tmp_path_factory.mktemp("mic") / "alarm.flac", samples, 16000), onset


def hub_config(tmp_path, cameras: str, mic: str, recording: str = "") -> str:
    text = f'[service]\ndata_dir = "{tmp_path / "data"}"\n[recording]\npre_roll_s = 2.0\npost_roll_s = 1.0\n'
    return text + recording + cameras + mic


def service_with_mic(tmp_path, cameras: str, mic: str, source: FileMic, *, config: Path | None = None) -> Service:
    svc = Service(load_config(config) if config else parse_config(hub_config(tmp_path, cameras, mic)))
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


# -- the owner's restriction and the spool quota ----------------------------------------------------

HALL = '[[microphones]]\nname = "hall"\nowner = "alice"\n'


@pytest.fixture(scope="module")
def two_alarms_wav(tmp_path_factory):
    """An alarm at 2 s (8 s long: the verifier confirms it after a T3 cycle, about 4 s in), then another at
    14 s: the second is heard after the restriction is lifted."""
    first, onset1 = alarm_scene(16000, silence_s=1.0, lead_noise_s=1.0, alarm_s=8.0, tail_s=2.0)
    second, onset2 = alarm_scene(16000, silence_s=0.0, lead_noise_s=2.0, alarm_s=6.0, tail_s=2.0, seed=8)
    samples = np.concatenate([first, second])
    path = encode_audio(tmp_path_factory.mktemp("mic") / "two-alarms.flac", samples, 16000)
    return path, onset1, len(first) / 16000 + onset2


def status(cfg: Path, capsys) -> dict:
    capsys.readouterr()
    assert main(["storage", "status", "--config", str(cfg), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_restricted_microphone_records_nothing(tmp_path, alarm_wav, capsys):
    """Regression: `storage restrict --camera <microphone>` printed "restricted", but the service applied
    restrictions to camera workers only, so the microphone went on recording; and `storage status` listed
    restricted cameras only."""
    cfg = tmp_path / "hub.toml"
    cfg.write_text(hub_config(tmp_path, "", HALL))
    assert main(["storage", "restrict", "--config", str(cfg), "--camera", "hall"]) == 0
    restricted = status(cfg, capsys)
    assert restricted["restricted_microphones"] == ["hall"] and restricted["restricted_cameras"] == []
    assert restricted["sources"] == [{"camera": "hall", "kind": "microphone", "owner": "alice", "state": "restricted"}]

    svc = service_with_mic(tmp_path, "", HALL, FileMic(alarm_wav[0], realtime=True), config=cfg)
    svc.run()
    counts, blocks = svc.outbox.counts(), svc.mics[0].blocks
    svc.close()
    assert blocks > 50, "the device was read (and its audio dropped unheard)"
    assert sum(counts.values()) == 0 and sidecars(tmp_path) == [], "a restricted microphone records nothing"
    assert not [p for p in (tmp_path / "data" / "spool").rglob("*") if p.is_file()]

    assert main(["storage", "unrestrict", "--config", str(cfg), "--camera", "hall"]) == 0
    lifted = status(cfg, capsys)
    assert lifted["restricted_microphones"] == [] and lifted["sources"][0]["state"] == "enabled"


def test_a_restricted_paired_microphone_gives_its_camera_no_events(tmp_path, alarm_wav, capsys):
    """Regression: restricting a microphone paired with a camera did nothing: its alarm still opened the
    camera's clip. The camera itself is not restricted, and its own detection goes on."""
    video = make_video(tmp_path / "cam.mp4", VideoSpec(duration_s=10, noise_sigma=2.0))
    cams = f'[[cameras]]\nname = "hallcam"\nrecord_url = "{video}"\nrealtime = true\n'
    mic = '[[microphones]]\nname = "hall"\ncamera = "hallcam"\n'
    cfg = tmp_path / "hub.toml"
    cfg.write_text(hub_config(tmp_path, cams, mic))
    assert main(["storage", "restrict", "--config", str(cfg), "--camera", "hall"]) == 0
    assert status(cfg, capsys)["restricted_cameras"] == [], "the camera stays unrestricted"
    svc = service_with_mic(tmp_path, cams, mic, FileMic(alarm_wav[0], realtime=True), config=cfg)
    svc.run()
    camera = svc.workers[0].pipeline
    svc.close()
    assert not camera.restricted and camera.stream_time_of(time.time()) is not None, "the camera ran"
    assert sidecars(tmp_path) == [], "the alarm heard by the restricted microphone opened no camera clip"


def test_restricting_a_recording_microphone_finishes_its_clip_and_lifting_it_resumes(tmp_path, two_alarms_wav):
    """Regression: a microphone restricted while it recorded went on recording. Now its open clip (recorded
    before the restriction) ends at once, nothing heard while restricted reaches any clip, not even as
    pre-roll, and the microphone records again once the restriction is lifted."""
    path, onset1, onset2 = two_alarms_wav
    mic = FileMic(path, realtime=True)
    svc = service_with_mic(tmp_path, "", HALL, mic)
    worker, scope = svc.mics[0], svc.ctx.scope("alice")
    times: dict[str, float] = {}

    def owner(block: AudioBlock) -> None:  # on the capture thread: the restriction acts on this very block
        if "restricted" not in times and worker.decider.recording:
            svc.rights.restrict(scope, "hall")
            times["restricted"] = block.time
        elif "restricted" in times and "lifted" not in times and block.time >= onset2 - 1.0:
            svc.rights.unrestrict(scope, "hall")
            times["lifted"] = block.time
        else:
            return
        svc._apply_restrictions()  # what the control loop does every 2 s, without waiting for it

    mic.on_block = owner
    svc.run()
    svc.close()
    assert set(times) == {"restricted", "lifted"}
    first, second = sorted(sidecars(tmp_path), key=lambda sc: sc["stream_start"])
    end1 = first["stream_start"] + first["duration_s"]
    assert [ev["label"] for ev in first["events"]] == ["smoke_co_alarm"]
    assert abs(first["events"][0]["start"] - onset1) <= 1.0
    assert end1 <= times["restricted"] + 1e-3, "the open clip ended at the restriction"
    assert end1 < onset1 + 7.0, "not when the 8 s alarm ended"
    assert [ev["label"] for ev in second["events"]] == ["smoke_co_alarm"]
    assert abs(second["events"][0]["start"] - onset2) <= 1.0
    assert second["stream_start"] >= times["lifted"] - 1e-3, "no audio heard while restricted, even as pre-roll"


def test_a_microphone_clip_is_refused_when_the_spool_is_full(tmp_path, alarm_wav, caplog):
    """Regression: the spool quota was wired for cameras only; with `stop-recording` and a full spool an
    unpaired microphone still recorded its clip, and no refusal was audited."""
    quota = 16 * 2**20
    policy = f'spool_quota_bytes = {quota}\nspool_full_policy = "stop-recording"\n'
    cfg = tmp_path / "hub.toml"
    cfg.write_text(hub_config(tmp_path, "", HALL, recording=policy))
    svc = service_with_mic(tmp_path, "", HALL, FileMic(alarm_wav[0], realtime=True), config=cfg)
    with open(svc.spool.ready_dir / "filler.bin", "wb") as f:  # sparse: counts, costs no disk
        f.truncate(quota + 2**20)
    svc.run()
    refusals = audit.entries(svc.ctx.db, action="refuse")
    hall_hash = svc.ctx.camera_hash("hall")
    svc.close()
    assert sidecars(tmp_path) == [] and not list(svc.spool.root.rglob("*.mp4")), "the microphone recorded nothing"
    assert len(refusals) == 1, "one audited refusal for the one event"
    assert refusals[0].owner == "alice" and hall_hash in refusals[0].detail and "hall" not in refusals[0].detail
    assert any("not recording this event (smoke_co_alarm): the spool is full" in r.getMessage() for r in caplog.records)
