"""Cuts a stream of audio blocks into the model's fixed windows, with an RMS silence gate.

Blocks of any size go in (a 341-sample AAC frame, a 100 ms microphone block, a whole file); every
complete window comes out once, with the stream time of its first sample. Times are derived from
integer sample counts since the start of the current run, never accumulated float by float, so the
window k of a run starts at exactly ``origin + k * hop / rate`` however many blocks fed it.

All per-sample work is numpy over the whole block: a copy into a growing buffer, a strided view
for the windows and one cumulative sum of squares for their energies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# A block may start up to this late/early against the sample count without being a discontinuity,
# whatever its length: stream timestamps are rounded to their time base (1/48000 s for AAC, 1 ms
# for RTSP-over-FLV), so a tiny block must not trip the "> 1 block" rule on rounding alone.
MIN_JUMP_S = 0.002
_SILENT_DBFS = -200.0  # what digital silence (all-zero window) reports instead of -inf


@dataclass(frozen=True, slots=True, eq=False)
class Window:
    """One model input. ``samples`` is a row of an array shared with the other windows of the
    same ``push`` (one allocation per block, not per window); treat it as read-only."""

    time: float  # stream seconds of the window's first sample
    samples: np.ndarray  # [window_samples] float32
    rms_dbfs: float  # 20*log10(rms); a full-scale square wave is 0 dBFS, a full-scale sine -3
    silent: bool  # below the gate: the detector must not run the model on it


@dataclass
class WindowerStats:
    samples: int = 0
    windows: int = 0
    silent_windows: int = 0
    discontinuities: int = 0


@dataclass
class AudioWindower:
    window_samples: int = 15600
    hop_samples: int = 7800
    sample_rate: int = 16000
    silence_dbfs: float = -60.0
    stats: WindowerStats = field(default_factory=WindowerStats)

    def __post_init__(self) -> None:
        if self.window_samples <= 0 or self.sample_rate <= 0:
            raise ValueError("window_samples and sample_rate must be positive")
        if not 0 < self.hop_samples <= self.window_samples:
            # A hop longer than the window would silently skip audio between windows.
            raise ValueError(f"hop_samples must be within 1..window_samples, got {self.hop_samples}")
        self._buf = np.zeros(self.window_samples + self.hop_samples, np.float32)
        self._len = 0  # valid samples in _buf; _buf[0] is the first sample of the next window
        self._origin: float | None = None  # stream time of sample 0 of the current run
        self._run_samples = 0  # samples pushed in the current run
        self._buf_start = 0  # run index of _buf[0]
        # Silence is compared as mean square, so the gate costs no log per window.
        self._silent_ms = 10.0 ** (self.silence_dbfs / 10.0)

    @property
    def next_time(self) -> float | None:
        """Stream time the next block is expected to start at (None before the first block)."""
        if self._origin is None:
            return None
        return self._origin + self._run_samples / self.sample_rate

    def reset(self) -> None:
        """Drop buffered audio: the next block starts a new run (reconnect, seek, gap)."""
        self._len = 0
        self._origin = None
        self._run_samples = 0
        self._buf_start = 0

    def push(self, block: np.ndarray, start_time: float) -> list[Window]:
        """Append ``block`` (mono float32, stream time of its first sample); return new windows."""
        samples = _mono(block)
        n = len(samples)
        if n == 0:
            return []
        self._check_continuity(start_time, n)
        if self._origin is None:
            self._origin = float(start_time)
        self._append(samples)
        self._run_samples += n
        self.stats.samples += n
        return self._take_windows()

    def end(self) -> list[Window]:
        """End of the source (a file's end): windows go on over silence until every buffered sample
        has been in a window's start hop, as if the room went quiet, so a sound in the last second is
        heard as often as anywhere else. A file shorter than one window yields its windows here. The
        run is over afterwards."""
        if self._origin is None or self._len == 0:
            self.reset()
            return []
        last_start = (self._len - 1) // self.hop_samples * self.hop_samples  # window holding the last sample
        self._append(np.zeros(last_start + self.window_samples - self._len, np.float32))
        out = self._take_windows()
        self.reset()
        return out

    # -- internals -------------------------------------------------------------------------------

    def _check_continuity(self, start_time: float, n: int) -> None:
        expected = self.next_time
        if expected is None:
            return
        tolerance = max(n / self.sample_rate, MIN_JUMP_S)
        if abs(start_time - expected) > tolerance:
            # A gap (lost packets, reconnect) or a step back (looped file): windows spanning it
            # would mix unrelated audio and carry wrong times, so start over from this block.
            self.stats.discontinuities += 1
            self.reset()

    def _append(self, samples: np.ndarray) -> None:
        need = self._len + len(samples)
        if need > len(self._buf):
            grown = np.empty(max(need, 2 * len(self._buf)), np.float32)
            grown[: self._len] = self._buf[: self._len]
            self._buf = grown
        self._buf[self._len : need] = samples
        self._len = need

    def _take_windows(self) -> list[Window]:
        w, hop = self.window_samples, self.hop_samples
        if self._len < w:
            return []
        count = (self._len - w) // hop + 1
        data = self._buf[: self._len]
        starts = np.arange(count) * hop
        # One float64 cumulative sum gives every window's energy by a difference: O(samples),
        # not O(windows * window_samples), and exact enough for a -60 dBFS gate over 15600 samples.
        csum = np.concatenate(([0.0], np.cumsum(np.square(data, dtype=np.float64))))
        mean_sq = (csum[starts + w] - csum[starts]) / w
        windows = np.lib.stride_tricks.sliding_window_view(data, w)[::hop][:count].copy()
        out = [self._window(k, windows[k], float(mean_sq[k])) for k in range(count)]
        consumed = count * hop
        rest = self._len - consumed
        self._buf[:rest] = self._buf[consumed : self._len]  # numpy copies overlapping ranges safely
        self._len = rest
        self._buf_start += consumed
        return out

    def _window(self, k: int, samples: np.ndarray, mean_sq: float) -> Window:
        assert self._origin is not None
        first = self._buf_start + k * self.hop_samples
        silent = mean_sq < self._silent_ms
        dbfs = 10.0 * math.log10(mean_sq) if mean_sq > 0.0 else _SILENT_DBFS
        self.stats.windows += 1
        self.stats.silent_windows += silent
        return Window(self._origin + first / self.sample_rate, samples, max(dbfs, _SILENT_DBFS), silent)


def _mono(block: np.ndarray) -> np.ndarray:
    """A 1-D float32 view/copy of ``block``; accepts [n] or [n, 1] (sounddevice's shape)."""
    arr = np.asarray(block, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]  # PyAV's [channels, samples] for packed mono
    if arr.ndim != 1:
        raise ValueError(f"expected a mono block of shape [n] or [n, 1], got {arr.shape}")
    return arr
