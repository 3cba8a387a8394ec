"""Pre-roll ring: the last few seconds of encoded packets, kept as whole GOPs.

A clip must begin at a video keyframe, so the ring stores GOPs (a keyframe plus everything that
arrived after it until the next keyframe) and only ever drops whole GOPs from the old end. Packets
are held by reference: the ring never copies packet data.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from recorder.packets import MediaPacket


@dataclass(slots=True)
class _Gop:
    start: float  # stream time of the keyframe that opens it
    packets: list[MediaPacket] = field(default_factory=list)
    nbytes: int = 0


class PreRollRing:
    """Keyframe-aligned packet ring bounded by seconds and bytes.

    Time bound: the oldest GOP is dropped only while the next GOP's keyframe is still at or before
    ``newest_time - max_seconds`` — so a clip asked to start ``max_seconds`` back always finds a
    keyframe at or before that instant (the ring holds between ``max_seconds`` and
    ``max_seconds + one GOP``).
    Byte bound: oldest GOPs are dropped while over ``max_bytes``, keeping at least the newest GOP
    (a clip needs a keyframe to start from, even if a single GOP is huge).
    """

    def __init__(self, max_seconds: float, max_bytes: int) -> None:
        if max_seconds < 0 or max_bytes <= 0:
            raise ValueError("max_seconds must be >= 0 and max_bytes > 0")
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self._gops: deque[_Gop] = deque()
        self._nbytes = 0
        self._count = 0
        self._newest = float("-inf")

    def push(self, mp: MediaPacket) -> None:
        if mp.is_keyframe:
            self._gops.append(_Gop(start=mp.time))
        elif not self._gops:
            return  # nothing before the first keyframe is useful for a clip
        gop = self._gops[-1]
        gop.packets.append(mp)
        gop.nbytes += mp.size
        self._nbytes += mp.size
        self._count += 1
        self._newest = max(self._newest, mp.time)
        self._trim()

    def _trim(self) -> None:
        # Each GOP is dropped at most once, so trimming is O(1) amortised per packet.
        horizon = self._newest - self.max_seconds
        while len(self._gops) > 1 and self._gops[1].start <= horizon:
            self._drop_oldest()
        while len(self._gops) > 1 and self._nbytes > self.max_bytes:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        gop = self._gops.popleft()
        self._nbytes -= gop.nbytes
        self._count -= len(gop.packets)

    def packets_from(self, t: float) -> list[MediaPacket]:
        """Packets from the newest keyframe at or before ``t`` (else the oldest one), in arrival order."""
        if not self._gops:
            return []
        first = 0
        for i in range(len(self._gops) - 1, -1, -1):
            if self._gops[i].start <= t:
                first = i
                break
        out: list[MediaPacket] = []
        for i in range(first, len(self._gops)):
            out.extend(self._gops[i].packets)
        return out

    def clear(self) -> None:
        self._gops.clear()
        self._nbytes = 0
        self._count = 0
        self._newest = float("-inf")

    @property
    def oldest_keyframe_time(self) -> float | None:
        return self._gops[0].start if self._gops else None

    @property
    def duration(self) -> float:
        """Seconds from the oldest keyframe held to the newest packet (0 when empty)."""
        if not self._gops:
            return 0.0
        return max(self._newest - self._gops[0].start, 0.0)

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def __len__(self) -> int:
        return self._count
