"""Second-stage verifiers: domain knowledge that confirms a CNN candidate from the last seconds of audio.

The CNN confuses bird song and electronic music with alarms because, window by window, they look
alike. What no bird or song does is what standards require of the real thing:

* a smoke alarm sounds a narrow-band tone (piezo 2.8-3.6 kHz, or a 480-560 Hz low-frequency sounder)
  in the ISO 8201 temporal-three pattern (T3: three 0.5 s pulses one second apart, then 1.5 s off) and a
  CO alarm in temporal-four (T4: four 0.1 s pulses 0.2 s apart, then 5 s off);
* a siren is one dominant tone, held for seconds, whose pitch sweeps through 500-2,000 Hz with a period
  (wail 2-6 s, yelp 0.15-0.45 s) or steps between two pitches (hi-lo).

Both checks read onsets / a pitch track from one short-time spectrum of the buffered audio (numpy over
the block, no per-sample Python). Onsets, not on/off levels, carry the timing: reverb smears where a
pulse ends but not where it starts, and clipping changes neither. Every tolerance is wider than the
standards' own (±10 % timing) so that worn sounders and cheap microphones still pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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

@dataclass(frozen=True, slots=True)
class AlarmPatternCheck:
    """T3 / T4 on/off pattern of one narrow-band tone. ``seconds``: audio it needs (two T4 bursts)."""

    seconds: float = 8.0
    # (tone band, reference band whose median bin is the floor): piezo, then low-frequency sounders.
    # The bands of the training synthesis (piezo 2.5-4.2 kHz, low-frequency 400-650 Hz): a sounder the
    # model is taught to propose must not be one the verifier cannot hear.
    bands: tuple[tuple[float, float, float, float], ...] = ((2500.0, 4200.0, 1800.0, 5200.0),
                                                            (400.0, 660.0, 220.0, 1100.0))
    tone_contrast_db: float = 12.0  # tone bin over the band's median bin: a narrow-band tone
    on_within_db: float = 15.0  # "on": within this of the tone's loudest (97th percentile) level
    onset_rise_db: float = 9.0  # rise over the previous 40 ms that marks a pulse's start
    timing_tolerance: float = 0.2  # relative, on every interval (the standards allow 10 %)
    candidates_per_band: int = 3  # strongest steady pitches tried per band (a bird may hold another)

    def check(self, audio: np.ndarray, rate: int) -> Verdict:
        return self.check_spectrum(spectrum(audio, rate))

    def check_spectrum(self, spec: Spectrum) -> Verdict:
        if len(spec.power) < 50:
            return Verdict(False, kind="too short")
        for lo, hi, ref_lo, ref_hi in self.bands:
            for level, contrast in self._tone_traces(spec, lo, hi, ref_lo, ref_hi):
                # "on": a narrow-band tone near its own loudest level. Levels are absolute, not over
                # the floor (music moves the floor); a reverberant room keeps the tone far above the
                # floor through the pauses, only ~20 dB under the pulses.
                top = float(np.percentile(level, 97))
                on = (contrast >= self.tone_contrast_db) & (level >= top - self.on_within_db)
                onsets = self._onsets(level, on, top, spec.frame_s)
                # a T3 pulse holds its tone for 0.5 s; a chirp or a plucked note does not
                held = self._held(on, onsets, spec.frame_s, 0.4)
                found = (self._match_t3(on, onsets[held], spec.frame_s)
                         or _match_t4(onsets, self.timing_tolerance))
                if found is not None:
                    return Verdict(True, found[0], found[1])
        return Verdict(False, kind="no T3/T4 tone pattern")

    def _tone_traces(self, spec: Spectrum, lo: float, hi: float, ref_lo: float, ref_hi: float
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per candidate pitch, per frame: the tone's level (dB) and its contrast (dB over the
        reference band's median bin)."""
        band = spec.power[:, spec.bins(lo, hi)]
        floor = np.median(spec.power[:, spec.bins(ref_lo, ref_hi)], axis=1, keepdims=True) + 1e-12
        tonal = band / floor >= 10 ** (self.tone_contrast_db / 10)
        # pitches that are tonal in many frames; neighbours merged (a tone may straddle two bins)
        counts = np.convolve(tonal.sum(axis=0), np.ones(3), mode="same")
        traces = []
        for k in np.argsort(counts)[::-1][: self.candidates_per_band]:
            if counts[k] < 8:  # under ~80 ms of tone in the whole buffer: nothing to time
                break
            a, b = max(0, k - 1), min(band.shape[1], k + 2)
            tone = band[:, a:b].max(axis=1)
            traces.append((_db(tone), _db(tone / floor[:, 0])))
        return traces

    def _match_t3(self, tone_on: np.ndarray, held: np.ndarray, frame_s: float) -> tuple[float, str] | None:
        """Three held pulses a second apart, with the tone off for the second before the first (the
        alarm's start, or the 1.5 s pause of the previous cycle) and off again after the third (its
        own pause): an alarm's first three pulses are enough, so it is found 4 s after it starts."""
        if len(held) < 3:
            return None
        on = np.concatenate(([0], np.cumsum(tone_on)))
        n = len(tone_on)

        def quiet(a_s: float, b_s: float) -> bool:
            a, b = max(0, int(round(a_s / frame_s))), int(round(b_s / frame_s))
            if b > n or b - a < 0.5 / frame_s:
                return False  # not heard yet, or too little of it buffered (just connected): cannot tell
            return bool(on[b] - on[a] <= 0.3 * (b - a))

        gaps = np.diff(held)
        tol = self.timing_tolerance
        for i in np.flatnonzero(_near(gaps[:-1], 1.0, tol) & _near(gaps[1:], 1.0, tol)):
            p0, p2 = float(held[i]), float(held[i + 2])
            if quiet(p0 - 1.1, p0 - 0.05) and quiet(p2 + 0.9, p2 + 1.4):
                return p0, "T3"
        return None

    def _held(self, tone_on: np.ndarray, onsets: np.ndarray, frame_s: float, seconds: float) -> np.ndarray:
        """Per onset: is the tone on for most of the next ``seconds``?"""
        on = np.concatenate(([0], np.cumsum(tone_on)))
        a = np.round(onsets / frame_s).astype(int)
        b = np.minimum(a + int(seconds / frame_s), len(tone_on))
        return (on[b] - on[a]) >= 0.8 * seconds / frame_s

    def _onsets(self, level_db: np.ndarray, on: np.ndarray, top: float, frame_s: float) -> np.ndarray:
        """Seconds of each pulse start: the tone is on, and rose within 40 ms."""
        before = np.minimum.reduce([np.roll(level_db, k) for k in (2, 3, 4)])
        rise = level_db - before >= self.onset_rise_db
        rise[:4] = False
        # the direct sound of a pulse comes near the tone's top level; reverberant flutter does not
        ahead = np.maximum.reduce([np.roll(level_db, -k) for k in range(0, 5)])
        starts = np.flatnonzero(on & rise & (ahead >= top - 10.0))
        if len(starts) == 0:
            return np.zeros(0)
        keep = np.concatenate(([True], np.diff(starts) > 6))  # one onset per pulse (60 ms apart)
        return starts[keep] * frame_s


def _near(x: np.ndarray, target: float, tol: float) -> np.ndarray:
    return np.abs(x - target) <= tol * target


def _match_t4(onsets: np.ndarray, tol: float) -> tuple[float, str] | None:
    """Two bursts 5.8 s apart with nothing at this pitch between them. A burst: onsets within 0.9 s of
    each other, at least three of them on the 0.2 s grid of its first (reverb and a clipping speaker
    add or hide single onsets, never the grid)."""
    if len(onsets) < 6:
        return None
    clusters = np.split(onsets, np.flatnonzero(np.diff(onsets) > 0.6) + 1)
    bursts = [c[0] for c in clusters if _on_t4_grid(c)]
    starts = [c[0] for c in clusters]
    for a, b in zip(starts, starts[1:], strict=False):  # neighbours: nothing sounded in between
        if a in bursts and b in bursts and abs(b - a - 5.8) <= tol * 5.8:
            return float(a), "T4"
    return None


def _on_t4_grid(cluster: np.ndarray) -> bool:
    if len(cluster) < 3 or cluster[-1] - cluster[0] > 0.9:
        return False
    steps = (cluster - cluster[0]) / 0.2
    on_grid = np.abs(steps - np.round(steps)) <= 0.3
    return len(set(np.round(steps[on_grid]).astype(int)) & {0, 1, 2, 3}) >= 3


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
