"""Audio from a camera's stream or from a file, decoded by PyAV and resampled by FFmpeg.

Both produce :class:`AudioBlock` s of 16 kHz mono float32 with the stream time of their first
sample. FFmpeg's resampler (``aresample``) numbers its output frames in output samples, so block
times come from those sample counts and stay exact across thousands of odd-sized AAC frames.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

from ..errors import EdgeMediaError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FILE_BLOCK_SAMPLES = 8000  # 0.5 s: few Python steps per second of file, small enough to stream


class AudioBlock(NamedTuple):
    """Mono float32 samples and the stream time (seconds) of the first one; unpacks as a pair."""

    time: float
    samples: np.ndarray


class AudioSourceError(EdgeMediaError):
    """An audio source that cannot be read at all (missing, not media, no audio track)."""


@dataclass
class AudioDecodeStats:
    packets: int = 0
    blocks: int = 0
    samples: int = 0  # output samples (at the target rate)
    decode_errors: int = 0
    discontinuities: int = 0  # input timestamp gaps that restarted the resampler


class _Resampling:
    """Decoder output -> target-rate mono float32 blocks, timed by the resampler's sample count."""

    def __init__(self, rate: int, frame_size: int | None) -> None:
        self.rate, self.frame_size = rate, frame_size
        self.resampler = self._new()
        self.expected: float | None = None  # next input frame's start (s) if the stream is continuous
        self.next_time: float | None = None  # fallback time for frames without pts

    def _new(self) -> av.AudioResampler:
        return av.AudioResampler(format="flt", layout="mono", rate=self.rate, frame_size=self.frame_size)

    def feed(self, frame: av.AudioFrame | None, offset: float, stats: AudioDecodeStats
             ) -> list[AudioBlock]:
        """Resample ``frame`` (None flushes); ``offset`` maps stream seconds to source seconds."""
        out: list[AudioBlock] = []
        if frame is not None and frame.pts is not None and frame.time_base is not None:
            start = float(frame.pts * frame.time_base)
            duration = frame.samples / frame.sample_rate
            if self.expected is not None and abs(start - self.expected) > duration:
                # A hole or step in the input: drain and restart the resampler so its filter
                # history does not smear audio across the gap; the windower then sees the jump.
                stats.discontinuities += 1
                out += self._convert(self.resampler.resample(None), offset, stats)
                self.resampler = self._new()
            self.expected = start + duration
        out += self._convert(self.resampler.resample(frame), offset, stats)
        return out

    def _convert(self, frames: list[av.AudioFrame], offset: float, stats: AudioDecodeStats
                 ) -> list[AudioBlock]:
        blocks = []
        for f in frames:
            # Output pts count target-rate samples (time base 1/rate), hence exact times.
            if f.pts is not None and f.time_base is not None:
                t: float | None = offset + float(f.pts * f.time_base)
            else:
                t = self.next_time
            t = 0.0 if t is None else t
            samples = f.to_ndarray().reshape(-1)  # packed mono "flt": [1, n] -> [n]
            self.next_time = t + len(samples) / self.rate
            stats.blocks += 1
            stats.samples += len(samples)
            blocks.append(AudioBlock(t, samples))
        return blocks


@dataclass
class CameraAudioDecoder:
    """Decodes a camera's audio packets (as demuxed by ``VideoSource``) into 16 kHz blocks.

    Feed each audio ``MediaPacket.packet`` *before* it goes to the recorder: muxing rebases a
    packet's timestamps in place. Pass ``MediaPacket.time`` as ``time`` so blocks share the video
    source's monotonic clock (across reconnects); without it blocks carry raw stream seconds.
    Build a new decoder per connection (``Connected`` carries the new streams).
    """

    stream: av.audio.stream.AudioStream
    name: str = "camera"
    sample_rate: int = SAMPLE_RATE
    stats: AudioDecodeStats = field(default_factory=AudioDecodeStats)

    def __post_init__(self) -> None:
        self._codec = self.stream.codec_context
        # 100 ms output blocks: a camera's AAC frames are 21 ms, and converting and windowing each
        # one separately cost as much as decoding it; 0.1 s of latency is nothing for an event.
        self._resampling = _Resampling(self.sample_rate, self.sample_rate // 10)
        self._offset = 0.0

    def decode(self, packet: av.Packet, time: float | None = None) -> list[AudioBlock]:
        """Decode one packet; returns the blocks it completed (often one, sometimes none)."""
        self.stats.packets += 1
        raw = packet.pts if packet.pts is not None else packet.dts
        if time is not None and raw is not None and packet.time_base is not None:
            self._offset = time - float(raw * packet.time_base)
        try:
            frames = self._codec.decode(packet)
            return [b for f in frames for b in self._resampling.feed(f, self._offset, self.stats)]
        except (av.FFmpegError, ValueError) as exc:
            # Damaged audio happens on real networks: count it, report the first, never raise,
            # since the same packets still feed the recorder and the video pipeline.
            self.stats.decode_errors += 1
            if self.stats.decode_errors == 1:
                log.warning("%s: undecodable audio (%s); skipping damaged packets", self.name, exc)
            return []

    def flush(self) -> list[AudioBlock]:
        """Drain the decoder and resampler (end of stream, disconnect)."""
        try:
            frames = self._codec.decode(None)
        except (av.FFmpegError, ValueError):
            frames = []
        blocks = [b for f in frames for b in self._resampling.feed(f, self._offset, self.stats)]
        return blocks + self._resampling.feed(None, self._offset, self.stats)


@dataclass
class AudioFileSource:
    """Yields :class:`AudioBlock` s (16 kHz mono float32) from any file FFmpeg can read.

    Times are seconds from the start of the video track when there is one (the clock
    ``VideoSource`` uses for the same file, so audio and motion events line up), otherwise
    from the start of the audio track. Blocks are ``block_samples`` long except the last.
    """

    path: Path | str
    sample_rate: int = SAMPLE_RATE
    block_samples: int = FILE_BLOCK_SAMPLES
    stats: AudioDecodeStats = field(default_factory=AudioDecodeStats)

    def __iter__(self) -> Iterator[AudioBlock]:
        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError) as exc:
            raise AudioSourceError(f"cannot open audio file {self.path}: {exc}") from exc
        with container:
            if not container.streams.audio:
                raise AudioSourceError(f"{self.path} has no audio track")
            stream = container.streams.audio[0]
            resampling = _Resampling(self.sample_rate, self.block_samples)
            offset = -_origin_seconds(container, stream)
            try:
                for packet in container.demux(stream):
                    self.stats.packets += 1
                    for frame in self._decode(stream, packet):
                        yield from resampling.feed(frame, offset, self.stats)
            except av.FFmpegError as exc:
                raise AudioSourceError(f"{self.path}: unreadable audio data: {exc}") from exc
            yield from resampling.feed(None, offset, self.stats)
        if self.stats.samples == 0:  # e.g. junk that a demuxer accepted by its file extension
            raise AudioSourceError(f"{self.path}: no decodable audio "
                                   f"({self.stats.decode_errors} undecodable packets)")

    def _decode(self, stream: av.audio.stream.AudioStream, packet: av.Packet) -> list[av.AudioFrame]:
        try:
            return stream.codec_context.decode(packet)  # a flush packet (dts None) drains it
        except (av.FFmpegError, ValueError) as exc:
            self.stats.decode_errors += 1
            if self.stats.decode_errors == 1:
                log.warning("%s: undecodable audio (%s); skipping damaged packets", self.path, exc)
            return []


def _origin_seconds(container: av.container.InputContainer, audio: av.audio.stream.AudioStream
                    ) -> float:
    """Stream seconds that map to t=0: the video's start (as VideoSource), else the audio's."""
    for stream in (*container.streams.video[:1], audio):
        if stream.start_time is not None and stream.time_base is not None:
            return float(stream.start_time * stream.time_base)
    return 0.0
