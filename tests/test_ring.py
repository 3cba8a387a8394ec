"""PreRollRing with real demuxed H.264 + AAC packets (keyframe every 2 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder import PreRollRing

from media import demux


def test_keeps_pre_roll_from_a_keyframe(source: Path) -> None:
    ring = PreRollRing(max_seconds=3.0, max_bytes=1 << 30)
    with demux(source) as (_, packets):
        for mp in packets:
            ring.push(mp)
            oldest = ring.oldest_keyframe_time
            if oldest is not None and mp.time >= 3.0:
                # pre-roll honoured: a keyframe at or before now - 3 s is always still held ...
                assert oldest <= mp.time - 3.0
                # ... and no more than one extra GOP (2 s) beyond it
                assert oldest > mp.time - 3.0 - 2.0 - 1e-6
        first = ring.packets_from(0.0)
    assert first[0].is_keyframe and first[0].time == pytest.approx(ring.oldest_keyframe_time)
    assert len(ring) == len(first)
    assert ring.nbytes == sum(mp.size for mp in first)
    assert ring.duration == pytest.approx(first[-1].time - first[0].time, abs=0.1)


def test_drops_packets_before_first_keyframe(source: Path) -> None:
    ring = PreRollRing(max_seconds=10.0, max_bytes=1 << 30)
    with demux(source) as (_, packets):
        late = [mp for mp in packets if mp.time > 0.5]  # joins mid-GOP: first keyframe at 2 s
        for mp in late:
            ring.push(mp)
    held = ring.packets_from(-1.0)
    assert held[0].is_keyframe and held[0].time == pytest.approx(2.0)
    first_key = next(i for i, mp in enumerate(late) if mp.is_keyframe)
    assert len(ring) == len(held) == len(late) - first_key


def test_packets_from_picks_newest_keyframe_at_or_before(source: Path) -> None:
    ring = PreRollRing(max_seconds=100.0, max_bytes=1 << 30)
    with demux(source) as (_, packets):
        for mp in packets:
            ring.push(mp)
        arrival = [id(mp) for mp in packets if mp.time >= 4.0 or not mp.is_video]
    for t, key in ((3.0, 2.0), (4.0, 4.0), (5.99, 4.0), (-1.0, 0.0), (99.0, 8.0)):
        got = ring.packets_from(t)
        assert got[0].is_keyframe and got[0].time == pytest.approx(key)
    got = ring.packets_from(4.5)
    assert [id(mp) for mp in got] == [i for i in arrival if i in {id(m) for m in got}]  # arrival order
    assert all(mp.time >= 4.0 - 0.1 for mp in got)
    ring.clear()
    assert (len(ring), ring.nbytes, ring.duration, ring.packets_from(5.0)) == (0, 0, 0.0, [])


def test_bytes_bound_keeps_newest_gop(source: Path) -> None:
    with demux(source) as (_, packets):
        gop_bytes = sum(mp.size for mp in packets if 2.0 <= mp.time < 4.0)
        ring = PreRollRing(max_seconds=100.0, max_bytes=int(gop_bytes * 2.5))
        for mp in packets:
            ring.push(mp)
            assert ring.nbytes <= ring.max_bytes or ring.oldest_keyframe_time == ring.packets_from(1e9)[0].time
        assert ring.nbytes <= ring.max_bytes
        assert ring.oldest_keyframe_time in (4.0, 6.0)  # at most 2.5 GOPs of bytes held
        tiny = PreRollRing(max_seconds=100.0, max_bytes=1)
        for mp in packets:
            tiny.push(mp)
    held = tiny.packets_from(0.0)
    assert held[0].is_keyframe and held[0].time == pytest.approx(8.0)  # only the newest GOP survives
    assert tiny.nbytes == sum(mp.size for mp in held)
