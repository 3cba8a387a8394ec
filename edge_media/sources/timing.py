"""Stream time for a source: container timestamps mapped onto one monotonic clock across
reconnects, and timestamps made up for packets that carry none (raw ``.h264`` / ``.hevc`` files,
some RTP cameras)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import av

log = logging.getLogger(__name__)

# A timestamp that jumps further than this (camera reboot, 33-bit wrap, corrupt PES header) is a
# discontinuity: time carries on from where it was instead of leaping hours ahead or back.
MAX_TS_JUMP_S = 10.0


@dataclass
class Session:
    """Maps one connection's container timestamps onto the source's monotonic clock."""

    time_offset: float
    wall0: float
    origin: float | None = None
    last_time: float = 0.0
    jumps: int = 0
    connected: bool = False  # Connected was yielded: consumers must see a Disconnected
    usable: bool = False  # delivered something a consumer can use (see VideoSource._used)
    frames: int = 0  # detect frames yielded

    _tb_cache: dict = field(default_factory=dict)

    def time_of(self, ts: int | None, tb) -> float | None:
        if ts is None or tb is None:
            return None
        scale = self._tb_cache.get(tb)
        if scale is None:  # Fraction arithmetic per packet is measurable; floats are plenty here
            scale = self._tb_cache[tb] = float(tb)
        secs = ts * scale
        if self.origin is None:
            self.origin = secs
        t = self.time_offset + secs - self.origin
        if abs(t - self.last_time) > MAX_TS_JUMP_S and self.last_time > self.time_offset:
            self.jumps += 1
            if self.jumps == 1:
                log.warning("timestamp jump of %.1f s (corrupt or reset stream); re-anchoring", t - self.last_time)
            self.origin += t - self.last_time  # re-anchor: this packet continues from last_time
            t = self.last_time
        self.last_time = max(self.last_time, t)
        return t

    def wall_of(self, t: float) -> float:
        return self.wall0 + (t - self.time_offset)


class MissingTimestamps:
    """Gives video packets without pts/dts the time of the frame after the previous one.

    The step is the packet's own duration when the demuxer knows it (the raw H.264 parser does),
    else one frame at the stream's guessed rate. The packet itself is stamped (pts = dts), so the
    clip muxer gets valid timestamps too. This assumes decode order is display order, which holds
    for the B-frame-free streams cameras send. A packet that cannot be timed (audio, or a video
    stream with no known rate) is dropped and counted.
    """

    def __init__(self, video: av.video.stream.VideoStream) -> None:
        rate = video.guessed_rate or video.average_rate or video.base_rate
        tb = video.time_base
        self.step: int | None = round(1 / (rate * tb)) if rate and tb else None
        self.rate = float(rate) if rate else None
        self.video_index = video.index
        self.next_ts: int | None = None
        self.filled = 0
        self.dropped = 0

    def seen(self, packet: av.Packet) -> None:
        """A packet with timestamps: made-up ones continue from it."""
        if packet.stream_index == self.video_index and packet.dts is not None:
            self.next_ts = packet.dts + (packet.duration or self.step or 1)

    def fill(self, packet: av.Packet) -> bool:
        """Stamp a packet that has neither pts nor dts; False if it cannot be timed (drop it)."""
        step = packet.duration or self.step
        if packet.stream_index != self.video_index or not step:
            self.dropped += 1
            return False
        ts = self.next_ts if self.next_ts is not None else 0
        packet.pts = packet.dts = ts
        self.next_ts = ts + step
        self.filled += 1
        return True
