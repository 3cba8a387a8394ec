"""Second-stage verifiers: domain knowledge that confirms a CNN candidate from the last seconds of audio.

The CNN confuses bird song and electronic music with alarms because, window by window, they look
alike. What no bird or song does is what standards require of the real thing:

* a smoke alarm sounds a narrow-band tone (piezo 2.8-3.6 kHz, or a 480-560 Hz low-frequency sounder)
  in the ISO 8201 temporal-three pattern (T3: three 0.5 s pulses one second apart, then 1.5 s off) and a
  CO alarm in temporal-four (T4: four 0.1 s pulses 0.2 s apart, then 5 s off);
* a siren is one dominant tone, held for seconds, whose pitch sweeps through 500-2,000 Hz with a period
  (wail 2-6 s, yelp 0.15-0.45 s) or steps between two pitches (hi-lo).

Both checks read one short-time spectrum of the buffered audio (numpy over the block, no per-sample
Python). The alarm check picks the pitches whose level swings most between loud and quiet, and fits a
whole T3/T4 cycle plus the start of the next to each: the pattern's first pulse must start at an onset
(reverb smears where a pulse ends, not where it starts), every pulse must hold the tone and every long
pause must be free of it, at one time scale for the whole cycle (0.85-1.15: the standards allow
±10 %). A fit then has to sound like one sounder: pulses far above the pauses, equally loud, and for T4
gaps that fall under the pulses. Those level limits were chosen on training-side data only
(``models/audio_events/tune_verifier.py``). The siren check follows a pitch track.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

N_FFT = 512  # 32 ms at 16 kHz: 31 Hz bins, fine enough to hold one piezo tone in one or two bins
HOP = 160  # 10 ms frames: a T4 pulse (0.1 s) spans ten of them


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    onset_s: float | None = None  # seconds from the start of the checked audio to the pattern's first tone
    kind: str = ""  # "T3", "T4", "wail/yelp", "hi-lo" when ok; why not otherwise


@dataclass(frozen=True, slots=True)
class Spectrum:
    power: np.ndarray  # [frames, bins] power spectrum
    rate: int

    @property
    def frame_s(self) -> float:
        return HOP / self.rate

    def bins(self, lo_hz: float, hi_hz: float) -> slice:
        k = N_FFT / self.rate
        return slice(int(np.floor(lo_hz * k)), int(np.ceil(hi_hz * k)) + 1)


def spectrum(audio: np.ndarray, rate: int) -> Spectrum:
    """Hann-windowed power spectrum every 10 ms (one rfft over a strided view of the block)."""
    x = np.asarray(audio, np.float32)
    if len(x) < N_FFT:
        return Spectrum(np.zeros((0, N_FFT // 2 + 1), np.float32), rate)
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    spec = np.fft.rfft(frames * np.hanning(N_FFT).astype(np.float32), axis=1)
    return Spectrum((spec.real ** 2 + spec.imag ** 2).astype(np.float32), rate)


def _db(x: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(x + 1e-12)


# -- smoke / CO alarms -----------------------------------------------------------------------------

# ISO 8201 cycles as (on, off) seconds, and how many pulses of the next cycle a match also needs: a
# pattern is confirmed only once its pause has been heard AND the alarm has gone on after it, which no
# single beep, trill or held note does.
T3_CYCLE, T3_NEXT = ((0.5, 0.5), (0.5, 0.5), (0.5, 1.5)), 1
T4_CYCLE, T4_NEXT = ((0.1, 0.1), (0.1, 0.1), (0.1, 0.1), (0.1, 5.0)), 2


@dataclass(frozen=True, slots=True)
class _Template:
    """One ISO 8201 cycle and the start of the next as frame offsets from the first pulse, at every
    tried time scale: pulses, the parts of the long pauses that must be quiet (after the room's reverb
    has decayed, before the next pulse), and the middles of short (T4 in-burst) gaps."""

    kind: str
    on: np.ndarray  # [scales, pulses, 2] (start, end)
    quiet: np.ndarray  # [scales, pauses, 2]
    gaps: np.ndarray  # [scales, short gaps, 2]: the middle half of each T4 in-burst gap
    period: np.ndarray  # [scales] frames from one cycle's first pulse to the next's
    pulses_per_cycle: int


def _template(kind: str, cycle: tuple[tuple[float, float], ...], following: int, scales: np.ndarray,
              frame_s: float, reverb_s: float) -> _Template:
    segments = cycle + cycle[:following - 1] + ((cycle[following - 1][0], 0.0),)
    on, quiet, gaps = [], [], []
    for s in scales:
        pos, pulses, pauses, middles = 0.0, [], [], []
        for a, b in segments:
            pulses.append((pos, pos + a * s))
            gap = (pos + a * s, pos + (a + b) * s)
            if b >= 0.4:
                pauses.append((gap[0] + reverb_s, gap[1] - 0.05))
            elif b > 0:
                middles.append((0.75 * gap[0] + 0.25 * gap[1], 0.25 * gap[0] + 0.75 * gap[1]))
            pos += (a + b) * s
        on.append(pulses)
        quiet.append(pauses)
        gaps.append(middles)
    period = scales * sum(a + b for a, b in cycle)

    def frames(v: object) -> np.ndarray:
        return np.round(np.asarray(v, np.float64) / frame_s).astype(np.intp)
    return _Template(kind, frames(on), frames(quiet), frames(gaps).reshape(len(scales), -1, 2), frames(period),
                     len(cycle))


class _Trace:
    """One candidate pitch over the buffer: its level (dB), whether its tone is on, its onsets (frames),
    and the cumulative counts of "on" and of "on within 30 ms" that every template's shares read."""

    def __init__(self, level: np.ndarray, on: np.ndarray, starts: np.ndarray) -> None:
        self.level, self.on, self.starts = level, on, starts
        self.cum_on = np.concatenate(([0], np.cumsum(on)))
        self.cum_near = np.concatenate(([0], np.cumsum(np.convolve(on, np.ones(7), mode="same") > 0)))


def _share(cum: np.ndarray, spans: np.ndarray, n: int) -> np.ndarray:
    """Share of frames flagged in each [start, end) span (clipped to the n frames), from a cumulative sum."""
    a, b = np.clip(spans[..., 0], 0, n), np.clip(spans[..., 1], 0, n)
    return (cum[b] - cum[a]) / np.maximum(b - a, 1)


class AlarmFit(NamedTuple):
    """How a fit of a T3/T4 template sounds (``alarm_levels``)."""

    over_db: float  # pulses' median level over the pauses' median level
    spread_db: float  # difference between the pulses' peak levels: one sounder's pulses are equally loud
    held: float  # least of the pulses' longest unbroken tone, over the pulse's length: a sounder holds
    # its tone, a ringer warbling at 20 Hz or a trill breaks it every few frames
    dips_db: float | None  # T4: how far the middles of its short gaps fall under its pulses (dB)


def _longest_run(flags: np.ndarray) -> int:
    if not flags.any():
        return 0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    return int((edges[1::2] - edges[::2]).max())


def alarm_levels(tpl: _Template, level: np.ndarray, on: np.ndarray, at: int, j: int) -> AlarmFit:
    """The levels of a fit of ``tpl`` at frame ``at`` and time scale ``j``."""
    n = len(on)
    spans = at + tpl.on[j]
    held = min(_longest_run(on[max(0, a - 2):b + 2]) / max(b - a, 1) for a, b in spans)
    pulses = np.median(np.concatenate([level[a:b] for a, b in spans]))
    pauses = np.median(np.concatenate([level[a:b] for a, b in np.minimum(at + tpl.quiet[j], n)]))
    dips = None
    if tpl.gaps.shape[1]:  # whole gap middles: a ringer warbling at 20 Hz dips at some instants, not on average
        gaps = np.concatenate([level[a:max(b, a + 1)] for a, b in np.minimum(at + tpl.gaps[j], n - 1)])
        dips = float(pulses - np.mean(gaps))
    return AlarmFit(float(pulses - pauses), float(np.ptp([level[a:b].max() for a, b in spans])), held, dips)


@dataclass(frozen=True, slots=True)
class AlarmPatternCheck:
    """T3 / T4 on/off pattern of one narrow-band tone. ``seconds``: audio it needs (a T4 cycle and the
    start of the next, at the slowest tolerated timing)."""

    seconds: float = 8.0
    # (tone band, reference band whose median bin is the floor): piezo, then low-frequency sounders.
    # The bands of the training synthesis (piezo 2.5-4.2 kHz, low-frequency 400-650 Hz): a sounder the
    # model is taught to propose must not be one the verifier cannot hear.
    bands: tuple[tuple[float, float, float, float], ...] = ((2500.0, 4200.0, 1800.0, 5200.0),
                                                            (400.0, 660.0, 220.0, 1100.0))
    tone_contrast_db: float = 12.0  # tone bin over the band's median bin: a narrow-band tone
    on_within_db: float = 15.0  # "on": within this of the tone's loudest (97th percentile) level
    onset_rise_db: float = 9.0  # rise over the previous 40 ms that marks a pulse's start
    timing: tuple[float, float, float] = (0.85, 1.15, 0.01)  # time scales tried (standards: +-10 %)
    pulse_on: float = 0.7  # least share of each pulse's frames with the tone on (within 30 ms)
    pause_on: float = 0.3  # most share of each pause's checked frames with the tone on (and no onset)
    # pulses' median level over the pauses' median level, T3 and T4: a T4 pulse is short, so music's
    # notes fit its template more easily, and only the alarm's loudness sets it apart
    pause_db: tuple[float, float] = (10.0, 15.0)
    pulse_spread_db: float = 6.0  # most difference between the pulses' peak levels
    pulse_held: float = 0.5  # least unbroken tone in each pulse, over the pulse's length
    dip_db: float = 3.0  # a T4 burst's short gaps under its pulses (where reverb fills them)
    reverb_s: float = 0.2  # start of each pause left unchecked: a room's decay
    candidates_per_band: int = 3  # pitches tried per band (a bird may hold another)

    def check(self, audio: np.ndarray, rate: int) -> Verdict:
        return self.check_spectrum(spectrum(audio, rate))

    def check_spectrum(self, spec: Spectrum) -> Verdict:
        if len(spec.power) < 50:
            return Verdict(False, kind="too short")
        templates = _templates(self.timing, spec.frame_s, self.reverb_s)
        for lo, hi, ref_lo, ref_hi in self.bands:
            for level, contrast in self._tone_traces(spec, lo, hi, ref_lo, ref_hi):
                # "on": a narrow-band tone near its own loudest level. Levels are absolute, not over
                # the floor (music moves the floor); a reverberant room keeps the tone far above the
                # floor through the pauses, only ~20 dB under the pulses.
                top = float(np.percentile(level, 97))
                on = (contrast >= self.tone_contrast_db) & (level >= top - self.on_within_db)
                starts = self._onsets(level, on, top)
                if len(starts) < 2:
                    continue
                trace = _Trace(level, on, starts)
                for tpl in templates:
                    found = self._match(tpl, trace)
                    if found is not None:
                        return Verdict(True, found * spec.frame_s, tpl.kind)
        return Verdict(False, kind="no T3/T4 tone pattern")

    def _match(self, tpl: _Template, trace: _Trace) -> int | None:
        """The onset of the pattern's first heard cycle, or None. Every (onset, time scale) is scored
        at once: the share of each pulse with the tone on (within 30 ms: onsets and frames are 10 ms
        apart, scales 1 %), and the share of each pause with it on (a little: a bird, a note) or
        starting in it (never). The best few fits must then also sound like one sounder."""
        level, on, starts, cum_near, cum_on = trace.level, trace.on, trace.starts, trace.cum_near, trace.cum_on
        n = len(on)
        first = starts[starts + tpl.on[0, -1, 1] <= n]  # onsets with room for a cycle at the fastest timing
        if len(first) == 0:
            return None
        p = first[:, None, None, None]  # [onsets, 1, 1, 1] against [scales, segments, 2] offsets
        fits = first[:, None] + tpl.on[None, :, -1, 1] <= n
        pulse = _share(cum_near, p + tpl.on[None], n)
        pause = _share(cum_on, p + tpl.quiet[None], n)
        ok = fits & (pulse.min(axis=2) >= self.pulse_on) & (pause.max(axis=2) <= self.pause_on)
        span = np.clip(p + tpl.quiet[None], 0, n)  # a pulse that starts inside a pause: not this pattern's
        ok &= (np.searchsorted(starts, span[..., 1]) == np.searchsorted(starts, span[..., 0])).all(axis=2)
        score = np.where(ok, pulse.mean(axis=2) - pause.mean(axis=2), -1.0)
        for flat in np.argsort(score, axis=None)[::-1][:4]:  # the best few: levels one by one
            i, j = np.unravel_index(flat, score.shape)
            if score[i, j] < 0:
                break
            at = int(first[i])
            if self._stands_out(tpl, level, on, at, j):
                return self._first_cycle(tpl, cum_near, at, j)
        return None

    def _stands_out(self, tpl: _Template, level: np.ndarray, on: np.ndarray, at: int, j: int) -> bool:
        fit = alarm_levels(tpl, level, on, at, j)
        return (fit.over_db >= self.pause_db[tpl.kind == "T4"] and fit.spread_db <= self.pulse_spread_db
                and fit.held >= self.pulse_held
                and (fit.dips_db is None or fit.dips_db >= self.dip_db))

    def _first_cycle(self, tpl: _Template, cum_near: np.ndarray, at: int, j: int) -> int:
        """Step back a cycle at a time while the previous cycle's pulses were heard too: the event
        starts at the alarm's first pulse, not at the cycle that completed the match."""
        period, cycle = int(tpl.period[j]), tpl.on[j, : tpl.pulses_per_cycle]
        while at - period >= 0 and _share(cum_near, at - period + cycle, len(cum_near) - 1).min() >= self.pulse_on:
            at -= period
        return at

    def _tone_traces(self, spec: Spectrum, lo: float, hi: float, ref_lo: float, ref_hi: float
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per candidate pitch, per frame: the tone's level (dB) and its contrast (dB over the
        reference band's median bin)."""
        band = spec.power[:, spec.bins(lo, hi)]
        floor = np.median(spec.power[:, spec.bins(ref_lo, ref_hi)], axis=1, keepdims=True) + 1e-12
        tonal = band / floor >= 10 ** (self.tone_contrast_db / 10)
        # candidate pitches: tonal for a while, and with the widest swing between loud and quiet (an
        # alarm's tone is far louder than its pauses; a held note or a broadband bed swings less).
        # Neighbours merged: a tone may straddle two bins.
        merged = np.maximum.reduce([band, np.roll(band, 1, axis=1), np.roll(band, -1, axis=1)])
        lo_q, hi_q = _db(np.percentile(merged[::2], [50, 97], axis=0))  # every other frame: a ranking
        swing = np.where(np.convolve(tonal.sum(axis=0), np.ones(3), mode="same") >= 8, hi_q - lo_q, -np.inf)
        traces: list[tuple[np.ndarray, np.ndarray]] = []
        taken: list[int] = []
        for k in np.argsort(swing)[::-1]:
            if len(taken) == self.candidates_per_band or not np.isfinite(swing[k]):
                break
            if any(abs(int(k) - t) <= 1 for t in taken):
                continue
            taken.append(int(k))
            tone = merged[:, k]
            traces.append((_db(tone), _db(tone / floor[:, 0])))
        return traces

    def _onsets(self, level_db: np.ndarray, on: np.ndarray, top: float) -> np.ndarray:
        """Frames of each pulse start: the tone is on, and rose within 40 ms."""
        n = len(level_db)
        padded = np.concatenate((np.full(4, np.inf), level_db, np.full(4, -np.inf)))
        before = np.lib.stride_tricks.sliding_window_view(padded[:n + 2], 3).min(axis=1)  # frames t-4..t-2
        rise = level_db - before >= self.onset_rise_db
        # the direct sound of a pulse comes near the tone's top level; reverberant flutter does not
        ahead = np.lib.stride_tricks.sliding_window_view(padded[4:], 5).max(axis=1)  # frames t..t+4
        starts = np.flatnonzero(on & rise & (ahead >= top - 10.0))
        if len(starts) == 0:
            return starts
        keep = np.concatenate(([True], np.diff(starts) > 6))  # one onset per pulse (60 ms apart)
        return starts[keep]


@functools.lru_cache(maxsize=8)
def _templates(timing: tuple[float, float, float], frame_s: float, reverb_s: float) -> tuple[_Template, ...]:
    scales = np.arange(timing[0], timing[1] + 1e-9, timing[2])
    return (_template("T3", T3_CYCLE, T3_NEXT, scales, frame_s, reverb_s),
            _template("T4", T4_CYCLE, T4_NEXT, scales, frame_s, reverb_s))


# -- sirens ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SirenSweepCheck:
    """A held tone whose pitch sweeps (wail, yelp) or steps (hi-lo) with a period, 400-2,300 Hz."""

    seconds: float = 8.0
    band: tuple[float, float] = (400.0, 2300.0)
    tone_contrast_db: float = 12.0
    min_voiced: float = 0.6  # fraction of frames with a clear dominant tone: sirens do not pause
    min_range_oct: float = 0.18  # hi-lo's smallest step (x1.15 = 0.2 octave) and any sweep cover more
    min_periodicity: float = 0.5  # normalised autocorrelation of the pitch track at its period
    periods_s: tuple[float, float] = (0.14, 6.5)

    def check(self, audio: np.ndarray, rate: int) -> Verdict:
        return self.check_spectrum(spectrum(audio, rate))

    def check_spectrum(self, spec: Spectrum) -> Verdict:
        if len(spec.power) < 100:
            return Verdict(False, kind="too short")
        sl = spec.bins(*self.band)
        band = spec.power[:, sl]
        floor = np.median(band, axis=1) + 1e-12
        k = band.argmax(axis=1)
        peak = band[np.arange(len(band)), k]
        voiced = peak / floor >= 10 ** (self.tone_contrast_db / 10)
        if voiced.mean() < self.min_voiced:
            return Verdict(False, kind="no held tone")
        pitch = np.log2((k + sl.start + _parabolic(band, k)) * spec.rate / N_FFT)
        idx = np.flatnonzero(voiced)
        track = np.interp(np.arange(len(band)), idx, pitch[idx])  # bridge short dropouts
        track = _median3(track)  # reverb tails flip single frames to an older pitch
        lo, hi = np.percentile(track[idx], [10, 90])  # stray frames (a click, an onset) do not count
        if not self.min_range_oct <= hi - lo <= 2.0:
            return Verdict(False, kind="pitch does not sweep")
        period, corr = _periodicity(track, spec.frame_s, self.periods_s)
        if corr < self.min_periodicity:
            return Verdict(False, kind=f"pitch not periodic ({corr:.2f})")
        onset = float(idx[0] * spec.frame_s)
        # a siren glides (wail, yelp) or alternates between two pitches (hi-lo); a melody steps
        # between many pitches
        both = voiced[2:] & voiced[:-2]
        step = np.abs(track[2:] - track[:-2])[both]
        if (step < 0.003).mean() <= 0.5 and (step > 0.25).mean() < 0.2:
            return Verdict(True, onset, f"sweep {period:.2f} s")
        if _alternates(track, voiced):
            return Verdict(True, onset, f"hi-lo {period:.2f} s")
        return Verdict(False, kind="steps like a melody")


def _alternates(track: np.ndarray, voiced: np.ndarray) -> bool:
    """Hi-lo: jumps of one size (x1.15-1.6), up and down in turn, and held pitch in between."""
    d = track[3:] - track[:-3]
    jump = np.abs(d) > 0.12
    starts = np.flatnonzero(jump & ~np.concatenate(([False], jump[:-1])))
    if len(starts) < 3:
        return False
    size = np.array([d[i: i + 4][np.argmax(np.abs(d[i: i + 4]))] for i in starts])
    mag = np.abs(size)
    turns = np.sign(size[1:]) != np.sign(size[:-1])
    return bool(0.18 <= np.median(mag) <= 0.7 and np.std(mag) <= 0.25 * np.median(mag) and turns.mean() >= 0.8)


def _median3(x: np.ndarray) -> np.ndarray:
    if len(x) < 3:
        return x
    out = x.copy()
    out[1:-1] = np.median(np.stack([x[:-2], x[1:-1], x[2:]]), axis=0)
    return out


def _parabolic(band: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Sub-bin offset of each frame's peak from its neighbours (log-parabolic interpolation)."""
    kk = np.clip(k, 1, band.shape[1] - 2)
    rows = np.arange(len(band))
    a, b, c = (np.log(band[rows, kk + d] + 1e-12) for d in (-1, 0, 1))
    den = a - 2 * b + c
    off = np.where(np.abs(den) > 1e-9, 0.5 * (a - c) / np.where(den == 0, 1, den), 0.0)
    return np.clip(off, -0.5, 0.5) + (kk - k)


def _periodicity(track: np.ndarray, frame_s: float, periods: tuple[float, float]) -> tuple[float, float]:
    """(period s, normalised autocorrelation) of the strongest repeat of the pitch track."""
    x = track - track.mean()
    n = len(x)
    energy = float(np.dot(x, x))
    if energy <= 1e-9:
        return 0.0, 0.0
    spec = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(spec * np.conj(spec))[:n]
    lags = np.arange(n)
    # unbiased, so a long lag is not penalised for overlapping less; at least 1.3 periods must be seen
    lo, hi = int(periods[0] / frame_s), min(int(periods[1] / frame_s), int(n / 1.3))
    if hi <= lo:
        return 0.0, 0.0
    norm = ac[lo:hi] / energy * n / (n - lags[lo:hi])
    # the first strong maximum: a multiple of the period correlates as well but is not the period
    best = int(np.argmax(norm))
    return (lo + best) * frame_s, float(norm[best])


def _two_levels(track: np.ndarray, lo: float, hi: float) -> bool:
    """Nearly all of the voiced pitch sits at two levels (hi-lo)."""
    near = (np.abs(track - lo) < 0.05) | (np.abs(track - hi) < 0.05)
    return bool(near.mean() >= 0.8)


# -- runtime: which labels are verified, and the audio they need -----------------------------------

class PatternCheck(Protocol):
    @property
    def seconds(self) -> float: ...

    def check(self, audio: np.ndarray, rate: int) -> Verdict: ...

    def check_spectrum(self, spec: Spectrum) -> Verdict: ...


@dataclass(frozen=True, slots=True)
class LabelVerifier:
    """A label the CNN only proposes: windows scoring >= ``candidate`` run ``check`` over the last
    ``check.seconds`` of audio, and only a pattern it confirms starts an event. ``hold_s``: how long a
    confirmed event stays on without a candidate window (a T4 alarm is silent for 5 s per cycle)."""

    check: PatternCheck
    candidate: float
    hold_s: float


# Candidate thresholds are low on purpose (the pattern, not the score, decides); they only keep the
# verifier from running on every window. Fixed before any held-out evaluation.
DEFAULT_VERIFIERS: dict[str, LabelVerifier] = {
    "smoke_co_alarm": LabelVerifier(AlarmPatternCheck(), candidate=0.2, hold_s=7.0),
    "siren": LabelVerifier(SirenSweepCheck(), candidate=0.1, hold_s=4.0),
}


class AudioHistory:
    """The last ``seconds`` of one source's audio, rebuilt from its overlapping windows (each window
    adds only the samples after the newest one held); a gap starts it over. Its spectrum is kept too,
    and extended only by the frames new since it was last asked for: checks every hop during an
    alarm cost a fraction of one over the whole buffer."""

    def __init__(self, seconds: float, rate: int) -> None:
        self.rate, self._max = rate, int(seconds * rate)
        self._buf = np.zeros(2 * self._max, np.float32)
        self._len = 0
        self._end: float | None = None  # stream time just after the newest sample
        self._total = 0  # samples pushed since the run began: frames sit on a grid of this count
        self._frames = np.zeros((0, N_FFT // 2 + 1), np.float32)
        self._frame0 = 0  # grid index of _frames[0]

    @property
    def seconds(self) -> float:
        return self._max / self.rate

    def push(self, t: float, samples: np.ndarray) -> None:
        n = len(samples)
        end = t + n / self.rate
        new = n if self._end is None else int(round((end - self._end) * self.rate))
        if self._end is None or t > self._end + 0.5 / self.rate or new > n:  # first, or a gap
            self.reset()
            new = n
        if new <= 0:
            return
        if self._len + new > len(self._buf):  # keep the newest _max samples, then append
            keep = max(0, self._max - new)
            self._buf[:keep] = self._buf[self._len - keep: self._len]
            self._len = keep
        self._buf[self._len: self._len + new] = samples[n - new:]
        self._len += new
        self._total += new
        self._end = end

    def reset(self) -> None:
        self._len, self._end, self._total = 0, None, 0
        self._frames, self._frame0 = self._frames[:0], 0

    def last(self, seconds: float) -> tuple[np.ndarray, float]:
        """(up to ``seconds`` of the newest audio, stream time of its first sample)."""
        k = min(self._len, int(seconds * self.rate), self._max)
        end = self._end if self._end is not None else 0.0
        return self._buf[self._len - k: self._len], end - k / self.rate

    def spectrum(self, seconds: float) -> tuple[Spectrum, float]:
        """The :func:`spectrum` of up to ``seconds`` of the newest audio (frames on the run's 10 ms
        grid), and the stream time of its first frame."""
        audio, _ = self.last(seconds)
        first = self._total - len(audio)  # run sample index of audio[0]
        f_first = -(-first // HOP)
        f_end = (self._total - N_FFT) // HOP + 1  # one past the last complete frame
        cached_end = self._frame0 + len(self._frames)
        if len(self._frames) == 0 or cached_end < f_first or self._frame0 > f_first:
            self._frames, self._frame0, cached_end = self._frames[:0], f_first, f_first
        if f_end > cached_end:
            a = cached_end * HOP - first  # buffer index of the first new frame
            fresh = spectrum(audio[a: (f_end - 1) * HOP - first + N_FFT], self.rate).power
            self._frames = np.concatenate([self._frames[f_first - self._frame0:], fresh])
        else:
            self._frames = self._frames[f_first - self._frame0:]
        self._frame0 = f_first
        end = self._end if self._end is not None else 0.0
        return Spectrum(self._frames, self.rate), end - (self._total - f_first * HOP) / self.rate
