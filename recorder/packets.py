"""The one packet type that flows from a source into the recorder.

A source (in ``edge_media.sources``) wraps every demuxed packet of the record stream in a
:class:`MediaPacket`. The original ``pts``/``dts``/``time_base`` are kept here because muxing
rebases the PyAV packet's timestamps in place, and a packet in the pre-roll ring may be written
into more than one clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av


@dataclass(slots=True)
class MediaPacket:
    packet: av.Packet
    stream_index: int  # index of the input stream in the source container
    is_video: bool
    is_keyframe: bool  # always False for audio packets
    pts: int | None  # original timestamps, in time_base units
    dts: int | None
    time_base: Fraction
    time: float  # monotonic stream time in seconds (0 = start of this source's first session)
    wall: float  # wall-clock time (epoch seconds) this packet stands for
    size: int

    @classmethod
    def wrap(cls, packet: av.Packet, *, is_video: bool, time: float, wall: float) -> MediaPacket:
        return cls(
            packet=packet,
            stream_index=packet.stream_index,
            is_video=is_video,
            is_keyframe=bool(is_video and packet.is_keyframe),
            pts=packet.pts,
            dts=packet.dts,
            time_base=packet.time_base,
            time=time,
            wall=wall,
            size=packet.size,
        )
