"""A local microphone through ``sounddevice`` (PortAudio), feeding a preallocated ring buffer.

PortAudio calls our callback on its own real-time thread every block. That callback must never
block, allocate audio buffers or log (a glitch there drops samples), so it only copies the block
into :class:`AudioRing` and bumps an integer. The consumer thread polls :meth:`MicSource.read`.
Single producer, single consumer: the writer publishes its position only after the copy, and the
reader re-checks the position after its copy, so an overrun is detected instead of returning torn
audio (the lost span then shows up as a time gap, which the windower treats as a discontinuity).

``sounddevice`` is imported inside :meth:`MicSource.start` only: a hub without PortAudio still
runs every camera, and the service logs :class:`MicUnavailable` (whose message says how to fix it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from ..errors import EdgeMediaError
from .sources import SAMPLE_RATE, AudioBlock

MIC_FIX = ("install the extra with `pip install 'edge-media[mic]'` and the system library with "
           "`apt-get install -y libportaudio2`; list input devices with `python -m sounddevice`")
DEVICE_FIX = ("list input devices with `python -m sounddevice` and set the microphone's device to one "
              "of their names or indices (a USB microphone needs to be plugged in before start)")


class MicUnavailable(EdgeMediaError, RuntimeError):
    """No usable microphone: sounddevice/PortAudio missing, or no such input device."""


class AudioRing:
    """Preallocated float32 ring; positions are absolute sample counts since the start."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._data = np.zeros(capacity, np.float32)
        self.written = 0  # published by the writer after each copy (an int store is atomic)
        self.read_pos = 0  # owned by the reader
        self.dropped = 0  # samples overwritten before the reader got them
        self.status_flags = 0  # callbacks that reported an overflow/underflow from PortAudio

    def write(self, block: np.ndarray) -> None:
        """Copy ``block`` (1-D float32) in; at most two slice copies, no allocation."""
        n = len(block)
        base = self.written
        if n > self.capacity:  # only the newest samples can be kept
            base, block, n = base + n - self.capacity, block[n - self.capacity:], self.capacity
        start = base % self.capacity
        first = min(n, self.capacity - start)
        self._data[start : start + first] = block[:first]
        self._data[: n - first] = block[first:]
        self.written = base + n  # publish only after the copy

    def sounddevice_callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any
                             ) -> None:
        """``sounddevice.InputStream`` callback (PortAudio's thread): copy channel 0, nothing else."""
        if status:
            self.status_flags += 1
        self.write(indata[:frames, 0])

    def available(self) -> int:
        return min(self.written - self.read_pos, self.capacity)

    def read(self, max_samples: int | None = None) -> tuple[int, np.ndarray]:
        """(absolute index of the first sample, copy of up to ``max_samples`` unread samples)."""
        written = self.written
        if written - self.read_pos > self.capacity:  # the writer lapped us: skip what is lost
            self.dropped += written - self.capacity - self.read_pos
            self.read_pos = written - self.capacity
        n = written - self.read_pos
        if max_samples is not None:
            n = min(n, max_samples)
        start = self.read_pos % self.capacity
        first = min(n, self.capacity - start)
        out = np.concatenate((self._data[start : start + first], self._data[: n - first]))
        index = self.read_pos
        # Seqlock-style check: if the writer overtook us during the copy, the head was overwritten.
        overrun = min(self.written - self.capacity - index, len(out))
        if overrun > 0:
            out, index = out[overrun:], index + overrun
            self.dropped += overrun
        self.read_pos = index + len(out)
        return index, out


@dataclass
class MicSource:
    """16 kHz mono blocks from a microphone; ``read()`` returns (stream seconds, float32 block).

    Stream time 0 is the first sample after :meth:`start`; ``start_wall`` is its epoch time.
    """

    device: str | int | None = None
    block_ms: int = 100
    sample_rate: int = SAMPLE_RATE
    ring_seconds: float = 10.0  # consumer may stall this long before samples are dropped
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.block_ms <= 0:
            raise ValueError(f"block_ms must be positive, got {self.block_ms}")
        self.block_samples = max(1, self.sample_rate * self.block_ms // 1000)
        self.ring = AudioRing(max(int(self.ring_seconds * self.sample_rate), 4 * self.block_samples))
        self.start_wall: float | None = None
        self._stream: Any = None

    def start(self) -> None:
        """Open and start the input stream; raises :class:`MicUnavailable` naming the fix."""
        sd = _import_sounddevice()
        try:
            sd.query_devices(self.device, "input")  # raises for a missing or output-only device
            stream = sd.InputStream(device=self.device, channels=1, samplerate=self.sample_rate,
                                    dtype="float32", blocksize=self.block_samples,
                                    callback=self.ring.sounddevice_callback)
            stream.start()
        except (ValueError, sd.PortAudioError) as exc:
            which = "the default microphone" if self.device is None else f"microphone {self.device!r}"
            raise MicUnavailable(f"{which} cannot be opened at {self.sample_rate} Hz ({exc}); "
                                 f"{DEVICE_FIX}") from exc
        self._stream, self.start_wall = stream, time.time()

    def stop(self) -> None:
        self.stop_event.set()
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def read(self, timeout: float | None = None) -> AudioBlock | None:
        """Wait for at least one block; returns everything unread (None on timeout or stop).

        Polls instead of waiting on a condition so the real-time callback never touches a lock.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        poll = self.block_samples / self.sample_rate / 4
        while self.ring.available() < self.block_samples:
            if self.stop_event.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return None
            self.stop_event.wait(poll)
        index, samples = self.ring.read()
        return AudioBlock(index / self.sample_rate, samples)


def _import_sounddevice() -> Any:
    try:
        import sounddevice as sd
    except ImportError as exc:
        raise MicUnavailable(f"sounddevice is not installed ({exc}); {MIC_FIX}") from exc
    except OSError as exc:  # sounddevice raises OSError when libportaudio is absent
        raise MicUnavailable(f"PortAudio library not found ({exc}); {MIC_FIX}") from exc
    return sd
