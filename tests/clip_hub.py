"""A hub that has recorded real clips, for the commands that read them (``clips list``, ``feedback flag``).

Two file cameras run through the real Service: ``kitchen`` (alice) hears a smoke alarm on its AAC track (one
audio event, no motion), ``porch`` (bob) sees a box cross the frame and has no audio track (one motion event).
Recording takes a few seconds, so a module records once (:func:`record_hub`) and each test works on a copy
(:func:`copy_hub`): flags and erasures change the hub's database.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from edge_media.audio import AudioFileSource
from edge_media.cli import main
from edge_media.config import load_config
from edge_media.service.hub import Service
from uploader.db import Database

from audio_fixtures import alarm_scene, encode_audio, make_camera_clip
from media import MovingBox, VideoSpec, make_video

CAMERAS = {"kitchen": "alice", "porch": "bob"}


@dataclass(frozen=True)
class Hub:
    config: Path
    data: Path

    def db(self) -> Database:
        return Database(self.data / "edge-media.db")

    def clip_of(self, camera: str, capsys) -> str:
        """The clip id of ``camera``'s one clip, as ``clips list --json`` reports it."""
        assert main(["clips", "list", "--config", str(self.config), "--camera", camera, "--json"]) == 0
        [clip] = json.loads(capsys.readouterr().out)
        return clip["clip_id"]


def make_media(folder: Path) -> dict[str, Path]:
    samples, _ = alarm_scene(48000, alarm_s=8.0)
    return {"kitchen": make_camera_clip(folder / "kitchen.mp4", samples, rate=48000, fps=10, size=(320, 180)),
            "porch": make_video(folder / "porch.mp4", VideoSpec(duration_s=6, boxes=[MovingBox(2.0, 3.0)]))}


def write_config(path: Path, data: Path, media: dict[str, Path], *, storage: str = "",
                 owners: dict[str, str] | None = None) -> Path:
    cams = "".join(f'[[cameras]]\nname = "{name}"\nowner = "{owner}"\nrecord_url = "{media[name]}"\n'
                   for name, owner in (owners or CAMERAS).items() if name in media)
    path.write_text(f'[service]\ndata_dir = "{data}"\n[recording]\npre_roll_s = 1.0\npost_roll_s = 1.0\n'
                    f"{storage}\n{cams}")
    return path


def record_hub(folder: Path, media: dict[str, Path], *, storage: str = "") -> Hub:
    """Run the service on ``media`` (camera name -> file) until the files end; clips are uploaded if it can."""
    hub = Hub(write_config(folder / "hub.toml", folder / "data", media, storage=storage), folder / "data")
    svc = Service(load_config(hub.config))
    svc.run()
    svc.close()
    return hub


def copy_hub(hub: Hub, folder: Path, media: dict[str, Path], *, owners: dict[str, str] | None = None) -> Hub:
    """A copy of ``hub``'s data (database, spool, local store, install secret) with its own config."""
    data = folder / "data"
    shutil.copytree(hub.data, data)
    return Hub(write_config(folder / "hub.toml", data, media, owners=owners), data)


class FileMic:
    """The microphone device is the only stand-in: a real encoded file played at real time through the
    microphone source's interface (as in test_microphone)."""

    def __init__(self, path: Path) -> None:
        self.path, self.start_wall, self.ended = path, None, False

    def start(self) -> None:
        self.blocks = iter(AudioFileSource(self.path, block_samples=1600))
        self.start_wall = time.time()

    def read(self, timeout=None):
        block = next(self.blocks, None)
        if block is None:
            self.ended = True
            return None
        time.sleep(max(0.0, self.start_wall + block.time - time.time()))
        return block

    def stop(self) -> None:
        pass


def record_microphone(folder: Path) -> Hub:
    """An unpaired microphone of alice's hears a short smoke alarm: one audio-only clip (AAC, no video)."""
    samples, _ = alarm_scene(16000, silence_s=0.5, lead_noise_s=0.5, alarm_s=5.0, tail_s=2.0)
    sound = encode_audio(folder / "hall.flac", samples, 16000)
    hub = Hub(folder / "hub.toml", folder / "data")
    hub.config.write_text(f'[service]\ndata_dir = "{hub.data}"\n[recording]\npre_roll_s = 1.0\npost_roll_s = 1.0\n'
                          '[[microphones]]\nname = "hall"\nowner = "alice"\n')
    svc = Service(load_config(hub.config))
    svc.mics = [svc._mic(svc.config.microphones[0], source=FileMic(sound))]
    svc.run()
    svc.close()
    return hub
