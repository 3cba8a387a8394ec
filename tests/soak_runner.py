"""``edge-media run`` with a looping microphone stand-in, for the soak test (tests/test_faults_soak.py).

The whole CLI path runs as shipped (config, logging, signals, API, clean stop); only the capture device is
replaced, through the service's ``_mic(mic, source=...)`` hook, by one that replays a decoded audio file forever
at real time on a continuous clock, as a sound card delivers blocks.

    python tests/soak_runner.py AUDIO_FILE run --config hub.toml
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from edge_media import cli
from edge_media.audio import AudioBlock, AudioFileSource
from edge_media.config import MicrophoneConfig
from edge_media.service import hub
from edge_media.service.microphone import BlockSource, MicWorker

BLOCK = 1600  # 100 ms at 16 kHz, a device's block_ms = 100


class LoopingMic:
    """``MicSource``'s interface (start/read/stop/start_wall); decoded once, so the stand-in itself cannot leak."""

    def __init__(self, path: Path) -> None:
        self.samples = np.concatenate([b.samples for b in AudioFileSource(path, block_samples=BLOCK)])
        self.start_wall: float | None = None
        self.n = 0  # blocks delivered

    def start(self) -> None:
        self.start_wall, self.n = time.time(), 0

    def read(self, timeout: float | None = None) -> AudioBlock | None:
        assert self.start_wall is not None
        t = self.n * BLOCK / 16000
        time.sleep(max(0.0, self.start_wall + t + BLOCK / 16000 - time.time()))  # a block is ready once heard
        at = self.n * BLOCK % len(self.samples)
        block = np.take(self.samples, range(at, at + BLOCK), mode="wrap")
        self.n += 1
        return AudioBlock(t, block)

    def stop(self) -> None:
        pass


class SoakService(hub.Service):
    audio: Path  # set by main() before the CLI builds the service

    def _mic(self, mic: MicrophoneConfig, source: BlockSource | None = None) -> MicWorker:
        return super()._mic(mic, source=source or LoopingMic(self.audio))


def main(argv: list[str]) -> int:
    SoakService.audio = Path(argv[0])
    hub.Service = SoakService  # type: ignore[misc]  # cmd_run imports the Service class when it runs
    return cli.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
