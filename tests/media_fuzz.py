"""Hostile media for the fault suite (issue 14, item 4): mutants of a real encoded file, the same for the same seed.

Packet-level mutators demux the clean file with PyAV, change the packets (timestamps, sizes, order, count) and
remux them: MP4 where its muxer accepts the result, Matroska where equal timestamps must survive (duplicates),
MPEG-TS where a camera changes resolution mid-stream (in-band SPS/PPS). libavformat refuses any timestamp that
goes *backwards*, so those mutants are written as MPEG-TS first and their PES headers' 33-bit PTS/DTS are
rewritten afterwards, as a corrupt or reset camera would send them. Byte-level mutators flip, zero, cut and
splice the encoded bytes of either container.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from media import VideoSpec, make_video

__all__ = ["MUTATORS", "TS_CLOCK", "Mutant", "Sources", "make_mutants", "make_sources", "retime_ts"]

TS_CLOCK = 90_000  # MPEG-TS timestamps tick at 90 kHz ...
TS_WRAP = 1 << 33  # ... in 33 bits (26.5 h)
TS_PACKET = 188
MB = 1 << 20


@dataclass(frozen=True)
class Sources:
    """The clean files every mutant starts from: one content as MP4 and MPEG-TS, plus a TS of another size."""

    mp4: Path
    ts: Path
    resized_ts: Path


@dataclass(frozen=True)
class Mutant:
    name: str  # "<mutator>-<seed>"
    mutator: str
    seed: int
    path: Path


@dataclass
class _Pkt:
    """One demuxed packet, detached from PyAV (its bytes copied) so it can be edited freely."""

    video: bool
    data: bytes
    pts: int | None
    dts: int
    key: bool
    tb: Fraction
    duration: int

    def at(self, seconds: float) -> int:
        """``seconds`` in this packet's time base."""
        return round(seconds / self.tb)

    @property
    def time(self) -> float:
        return float(self.dts * self.tb)


Packets = list[_Pkt]
Rng = np.random.Generator


def make_sources(root: Path, spec: VideoSpec, resized: tuple[int, int]) -> Sources:
    """The clean files: ``spec`` as MP4 and TS, and the same scene at ``resized`` (w, h) as TS."""
    other = replace(spec, width=resized[0], height=resized[1])
    return Sources(make_video(root / "clean.mp4", spec), make_video(root / "clean.ts", spec),
                   make_video(root / "resized.ts", other))


# -- packet level: PyAV demux -> edit -> remux -------------------------------------------------------------------

def _read(path: Path) -> Packets:
    with av.open(str(path)) as c:
        return [_Pkt(p.stream.type == "video", bytes(p), p.pts, p.dts, bool(p.is_keyframe), p.time_base,
                     p.duration or 0)
                for p in c.demux() if p.dts is not None and p.stream.type in ("video", "audio")]


def _write(template: Path, dest: Path, fmt: str, packets: Iterable[_Pkt]) -> Path:
    """Mux ``packets`` with ``template``'s codec parameters; the muxer's refusal is a mutator bug: it raises."""
    # bitexact: no random Matroska UIDs, so a seed always gives the same bytes
    with av.open(str(template)) as inp, av.open(str(dest), "w", format=fmt, options={"fflags": "+bitexact"}) as out:
        streams = {True: out.add_stream_from_template(inp.streams.video[0]),
                   False: out.add_stream_from_template(inp.streams.audio[0])}
        for p in packets:
            pkt = av.Packet(p.data)
            pkt.pts, pkt.dts, pkt.time_base, pkt.duration = p.pts, p.dts, p.tb, p.duration
            pkt.is_keyframe = p.key
            pkt.stream = streams[p.video]
            out.mux(pkt)
    return dest


def _remux(src: Path, dest: Path, fmt: str, edit: Callable[[Packets], Packets]) -> Path:
    return _write(src, dest, fmt, edit(_read(src)))


def _shift(p: _Pkt, seconds: float) -> _Pkt:
    d = p.at(seconds)
    return replace(p, pts=None if p.pts is None else p.pts + d, dts=p.dts + d)


def _window(n: int, rng: Rng) -> int:
    """A random point in the middle half of ``n`` items: the mutation hits after a clean start."""
    return int(rng.integers(n // 4, max(n // 4 + 1, 3 * n // 4)))


def duplicate_packets(s: Sources, dest: Path, rng: Rng) -> Path:
    """Some packets arrive 2-5 times with identical timestamps (a retransmitting camera); Matroska keeps them."""
    def edit(pkts: Packets) -> Packets:
        return [q for p in pkts for q in [p] * (int(rng.integers(2, 6)) if rng.random() < 0.15 else 1)]
    return _remux(s.mp4, dest.with_suffix(".mkv"), "matroska", edit)


def reorder_packets(s: Sources, dest: Path, rng: Rng) -> Path:
    """Video payloads shuffled within windows of 2-6 packets, timestamps left in order: frames decode out of
    order against the wrong references."""
    def edit(pkts: Packets) -> Packets:
        video = [i for i, p in enumerate(pkts) if p.video]
        out = list(pkts)
        for start in range(0, len(video), 12):
            idx = video[start:start + int(rng.integers(2, 7))]
            for i, j in zip(idx, rng.permutation(idx)):
                out[i] = replace(pkts[i], data=pkts[j].data, key=pkts[j].key)
        return out
    return _remux(s.mp4, dest.with_suffix(".mp4"), "mp4", edit)


def scramble_pts(s: Sources, dest: Path, rng: Rng) -> Path:
    """Video pts = dts + 0..2 s at random: presentation times jump back and forth (dts stays muxable)."""
    def edit(pkts: Packets) -> Packets:
        return [replace(p, pts=p.dts + p.at(float(rng.uniform(0, 2)))) if p.video else p for p in pkts]
    return _remux(s.mp4, dest.with_suffix(".mp4"), "mp4", edit)


def jump_timestamps(s: Sources, dest: Path, rng: Rng) -> Path:
    """From a point on, every timestamp leaps a minute to ten hours ahead (a camera's clock reset)."""
    def edit(pkts: Packets) -> Packets:
        at, leap = pkts[_window(len(pkts), rng)].time, float(rng.uniform(60, 36_000))
        return [_shift(p, leap) if p.time >= at else p for p in pkts]
    return _remux(s.mp4, dest.with_suffix(".mp4"), "mp4", edit)


def desync_av(s: Sources, dest: Path, rng: Rng) -> Path:
    """One track (audio or video) starts 2-40 s after the other."""
    def edit(pkts: Packets) -> Packets:
        late, lag = bool(rng.random() < 0.5), float(rng.uniform(2, 40))
        return [_shift(p, lag) if p.video == late else p for p in pkts]
    return _remux(s.mp4, dest.with_suffix(".mp4"), "mp4", edit)


def drift_audio(s: Sources, dest: Path, rng: Rng) -> Path:
    """Audio timestamps run 0.3-0.7x or 1.5-3x as fast as the video's."""
    rate = float(rng.choice([rng.uniform(0.3, 0.7), rng.uniform(1.5, 3.0)]))

    def edit(pkts: Packets) -> Packets:
        def scaled(p: _Pkt) -> _Pkt:
            dts = round(p.dts * rate)
            return replace(p, dts=dts, pts=None if p.pts is None else dts + round((p.pts - p.dts) * rate),
                           duration=max(1, round(p.duration * rate)))
        return [p if p.video else scaled(p) for p in pkts]
    return _remux(s.mp4, dest.with_suffix(".mp4"), "mp4", edit)


def zero_length_frames(s: Sources, dest: Path, rng: Rng) -> Path:
    """10-40 % of the video packets (keyframes too) carry no bytes at all."""
    share = float(rng.uniform(0.1, 0.4))

    def edit(pkts: Packets) -> Packets:
        return [replace(p, data=b"") if p.video and rng.random() < share else p for p in pkts]
    return _remux(s.mp4, dest.with_suffix(".mp4"), "mp4", edit)


def huge_frames(s: Sources, dest: Path, rng: Rng, max_mb: int = 4) -> Path:
    """1-3 video packets (a keyframe among them) become 1..``max_mb`` MiB: random bytes, or the real frame
    followed by junk."""
    def edit(pkts: Packets) -> Packets:
        video = [i for i, p in enumerate(pkts) if p.video]
        keys = [i for i in video if pkts[i].key]
        chosen = {int(rng.choice(keys)), *(int(i) for i in rng.choice(video, int(rng.integers(0, 3))))}
        out = list(pkts)
        for i in chosen:
            junk = rng.bytes(int(rng.integers(MB, max_mb * MB + 1)))
            out[i] = replace(pkts[i], data=junk if rng.random() < 0.5 else pkts[i].data + junk)
        return out
    return _remux(s.mp4, dest.with_suffix(".mp4"), "mp4", edit)


def change_resolution(s: Sources, dest: Path, rng: Rng) -> Path:
    """Mid-stream the camera switches to another resolution (in-band SPS/PPS), at a keyframe or, half the
    time, in the middle of a GOP."""
    first, second = _read(s.ts), _read(s.resized_ts)
    keys = [p.time for p in second if p.video and p.key and p.time > second[0].time]
    at = float(rng.choice(keys)) if rng.random() < 0.5 else second[_window(len(second), rng)].time
    packets = [p for p in first if p.time < at] + [p for p in second if p.time >= at]
    return _write(s.ts, dest.with_suffix(".ts"), "mpegts", packets)


# -- timestamps that go backwards: MPEG-TS PES headers rewritten in place --------------------------------------

def _read_ts_stamp(b: bytes) -> int:
    return ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def _ts_stamp(prefix: int, ts: int) -> bytes:
    ts %= TS_WRAP
    return bytes([(prefix & 0xF0) | ((ts >> 30) & 7) << 1 | 1, (ts >> 22) & 0xFF, ((ts >> 15) & 0x7F) << 1 | 1,
                  (ts >> 7) & 0xFF, (ts & 0x7F) << 1 | 1])


def _pes_headers(data: bytearray) -> Iterable[tuple[bool, int, int]]:
    """(video?, offset of the PTS field, number of stamps: 1 or 2 with DTS) of every PES header with a PTS."""
    for off in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
        pkt = data[off:off + TS_PACKET]
        if pkt[0] != 0x47 or not pkt[1] & 0x40:  # no sync, or no PES starts here
            continue
        start = 4 + (1 + pkt[4] if pkt[3] & 0x20 else 0)  # skip the adaptation field
        pes = pkt[start:]
        if len(pes) < 19 or pes[:3] != b"\x00\x00\x01" or not 0xC0 <= pes[3] <= 0xEF:
            continue
        flags = pes[7] >> 6
        if flags & 2:
            yield pes[3] >= 0xE0, off + start + 9, 2 if flags == 3 else 1


Stamps = list[int]
# (video stamps, audio stamps) -> the same, retimed: one PES timestamp (90 kHz) per PES header, in file order.
TsPlan = Callable[[Stamps, Stamps], tuple[Stamps, Stamps]]


def retime_ts(src: Path, dest: Path, plan: TsPlan) -> Path:
    """Copy ``src`` with its PES timestamps replaced by ``plan``'s (a DTS, where there is one, moves by as much
    as its PTS)."""
    data = bytearray(src.read_bytes())
    heads = list(_pes_headers(data))
    tracks = [[(off, n) for v, off, n in heads if v == video] for video in (True, False)]
    old = [[_read_ts_stamp(data[off:off + 5]) for off, _ in track] for track in tracks]
    for track, before, after in zip(tracks, old, plan(*old), strict=True):
        for (off, n), was, now in zip(track, before, after, strict=True):
            for field in range(off, off + 5 * n, 5):
                data[field:field + 5] = _ts_stamp(data[field], _read_ts_stamp(data[field:field + 5]) + now - was)
    dest.write_bytes(bytes(data))
    return dest


def _each(retime: Callable[[int], int]) -> TsPlan:
    """A plan that retimes every timestamp of both tracks alike."""
    return lambda video, audio: ([retime(t) for t in video], [retime(t) for t in audio])


def _video_point(video: Stamps, rng: Rng) -> int:
    """A video timestamp in the middle half of the file."""
    ordered = sorted(video)
    return ordered[_window(len(ordered), rng)]


def timestamps_back(s: Sources, dest: Path, rng: Rng) -> Path:
    """From a point on, time runs 1-8 s behind where it was (under the source's 10 s re-anchoring bound)."""
    def plan(video: Stamps, audio: Stamps) -> tuple[Stamps, Stamps]:
        at, back = _video_point(video, rng), int(rng.uniform(1, 8) * TS_CLOCK)
        return _each(lambda t: max(0, t - back) if t >= at else t)(video, audio)
    return retime_ts(s.ts, dest.with_suffix(".ts"), plan)


def timestamps_wrap(s: Sources, dest: Path, rng: Rng) -> Path:
    """The 33-bit clock wraps to zero part-way through the file."""
    def plan(video: Stamps, audio: Stamps) -> tuple[Stamps, Stamps]:
        offset = TS_WRAP - _video_point(video, rng)
        return _each(lambda t: (t + offset) % TS_WRAP)(video, audio)
    return retime_ts(s.ts, dest.with_suffix(".ts"), plan)


def timestamps_jitter(s: Sources, dest: Path, rng: Rng) -> Path:
    """Every timestamp off by a gaussian of 0.05-0.5 s: time goes back and forth from packet to packet."""
    sigma = rng.uniform(0.05, 0.5) * TS_CLOCK
    return retime_ts(s.ts, dest.with_suffix(".ts"), _each(lambda t: max(0, t + int(rng.normal(0, sigma)))))


def timestamps_excursion(s: Sources, dest: Path, rng: Rng) -> Path:
    """Time leaps 7-20 h ahead (past 2**31 ticks of 90 kHz: 6.6 h) for 2-3 s of the file, a keyframe among them,
    then comes back."""
    def plan(video: Stamps, audio: Stamps) -> tuple[Stamps, Stamps]:
        lo = _video_point(video, rng)
        hi = lo + int(rng.uniform(2, 3) * TS_CLOCK)
        leap = int(rng.uniform(7, 20) * 3600 * TS_CLOCK)
        return _each(lambda t: t + leap if lo <= t < hi else t)(video, audio)
    return retime_ts(s.ts, dest.with_suffix(".ts"), plan)


def reorder_with_timestamps(s: Sources, dest: Path, rng: Rng) -> Path:
    """Video packets out of order *with* their timestamps (windows of 2-6 every 10): dts goes backwards."""
    def plan(video: Stamps, audio: Stamps) -> tuple[Stamps, Stamps]:
        out = list(video)
        for start in range(0, len(video), 10):
            idx = list(range(start, min(start + int(rng.integers(2, 7)), len(video))))
            for i, j in zip(idx, rng.permutation(idx)):
                out[i] = video[j]
        return out, audio
    return retime_ts(s.ts, dest.with_suffix(".ts"), plan)


# -- byte level -------------------------------------------------------------------------------------------------

def _either(s: Sources, rng: Rng) -> Path:
    return s.mp4 if rng.random() < 0.5 else s.ts


def _bytes_mutant(s: Sources, dest: Path, rng: Rng, edit: Callable[[bytearray], bytearray]) -> Path:
    src = _either(s, rng)
    out = dest.with_suffix(src.suffix)
    out.write_bytes(bytes(edit(bytearray(src.read_bytes()))))
    return out


def _flip(data: bytearray, rng: Rng, lo: int, hi: int, n: int) -> bytearray:
    for pos in rng.integers(lo, max(lo + 1, hi), n):
        data[int(pos)] ^= 1 << int(rng.integers(8))
    return data


def flip_bits(s: Sources, dest: Path, rng: Rng) -> Path:
    """1-64 random bits flipped anywhere in the file."""
    return _bytes_mutant(s, dest, rng, lambda d: _flip(d, rng, 0, len(d), int(rng.integers(1, 65))))


def _index_region(data: bytearray) -> tuple[int, int]:
    """Where the container says what is where: an MP4's moov box, else the first TS packets (PAT, PMT)."""
    moov = data.find(b"moov")
    if moov >= 4:
        return moov - 4, moov - 4 + int.from_bytes(data[moov - 4:moov], "big")
    return 0, 4 * TS_PACKET


def flip_index(s: Sources, dest: Path, rng: Rng) -> Path:
    """1-16 bits flipped in the index (an MP4's sample tables: wild sizes, offsets, times; a TS's PAT/PMT)."""
    def edit(d: bytearray) -> bytearray:
        lo, hi = _index_region(d)
        return _flip(d, rng, lo, min(hi, len(d)), int(rng.integers(1, 17)))
    return _bytes_mutant(s, dest, rng, edit)


def truncate(s: Sources, dest: Path, rng: Rng) -> Path:
    """The file cut at 2-98 % of its length (an interrupted copy, a full card)."""
    return _bytes_mutant(s, dest, rng, lambda d: d[:int(len(d) * rng.uniform(0.02, 0.98))])


def _span(d: bytearray, rng: Rng) -> tuple[int, int]:
    start = int(rng.integers(0, len(d)))
    return start, min(len(d), start + int(rng.integers(1, 64 * 1024)))


def zero_range(s: Sources, dest: Path, rng: Rng) -> Path:
    """Up to 64 KiB zeroed (a bad sector)."""
    def edit(d: bytearray) -> bytearray:
        a, b = _span(d, rng)
        d[a:b] = bytes(b - a)
        return d
    return _bytes_mutant(s, dest, rng, edit)


def splice_garbage(s: Sources, dest: Path, rng: Rng) -> Path:
    """Up to 64 KiB of random bytes inserted somewhere (every later offset is wrong)."""
    def edit(d: bytearray) -> bytearray:
        at = int(rng.integers(0, len(d)))
        return d[:at] + rng.bytes(int(rng.integers(1, 64 * 1024))) + d[at:]
    return _bytes_mutant(s, dest, rng, edit)


def chop_range(s: Sources, dest: Path, rng: Rng) -> Path:
    """Up to 64 KiB cut out somewhere (a lost block)."""
    def edit(d: bytearray) -> bytearray:
        a, b = _span(d, rng)
        return d[:a] + d[b:]
    return _bytes_mutant(s, dest, rng, edit)


Mutator = Callable[[Sources, Path, Rng], Path]
MUTATORS: dict[str, Mutator] = {f.__name__.replace("_", "-"): f for f in (
    duplicate_packets, reorder_packets, reorder_with_timestamps, scramble_pts, jump_timestamps, timestamps_back,
    timestamps_wrap, timestamps_jitter, timestamps_excursion, desync_av, drift_audio, change_resolution,
    zero_length_frames, huge_frames, flip_bits, flip_index, truncate, zero_range, splice_garbage, chop_range)}


def make_mutants(sources: Sources, root: Path, seeds: Iterable[int], *, huge_mb: int = 4) -> list[Mutant]:
    """One mutant per mutator and seed, each from its own generator (same seed, same bytes)."""
    out = []
    for seed in seeds:
        for name, mutate in MUTATORS.items():
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            dest = root / f"{name}-{seed}"
            path = huge_frames(sources, dest, rng, huge_mb) if mutate is huge_frames else mutate(sources, dest, rng)
            out.append(Mutant(f"{name}-{seed}", name, seed, path))
    return out
