"""Audio windows' scores -> events (pure logic), and the detector that chains window -> model -> logic.

Per label, a Schmitt trigger with a minimum duration:
- a run begins at the first window scoring >= threshold and continues while windows score
  >= threshold - hysteresis (a fading alarm does not flicker on and off);
- the event starts once the run has been heard for ``min_duration_s`` (n windows x hop), and its
  start is the first window of the run (the true onset, so pre-roll is measured from there);
- it ends when nothing was heard for ``end_after_s``; its ``end`` is last heard + end_after_s,
  as the motion tracker's end is last seen + post-roll. Silent windows (model skipped) count as
  not heard. ``background``/``speech`` outputs are never events.
Labels with a verifier (:mod:`.verify`: smoke/CO alarm, siren) work differently: the CNN only
proposes them (a window at or above the verifier's low *candidate* threshold), and an event starts
once the verifier finds the label's pattern (T3/T4, a siren's sweep) in the last seconds of audio,
which the logic keeps per source. Its start is the window holding the pattern's first tone.
Events are the same :class:`~recorder.events.Event` values inside the same ``Transition`` s as the
motion tracker's, so the pipeline and the clip sidecar treat both alike (the model version is in
the sidecar's ``model_versions``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from recorder.events import Event

from ..events.tracker import Transition
from .labels import NON_EVENT_LABELS
from .scoring import ScoresModel, score_windows
from .verify import AudioHistory, LabelVerifier
from .windows import AudioWindower, Window

DEFAULT_HOP_S = 7800 / 16000  # the windower's default hop
RECHECK_S = 2.0  # verified labels: seconds after the last candidate window that still run the verifier
_EPS = 1e-9  # window times are exact multiples of the hop; this only absorbs float rounding


@dataclass(slots=True)
class _LabelState:
    threshold: float
    min_duration_s: float
    run_start: float | None = None  # first window of the current run (not yet an event)
    run_last: float = 0.0
    run_peak: float = 0.0
    active: Event | None = None
    verifier: LabelVerifier | None = None
    candidate_last: float | None = None  # newest window at or above the verifier's candidate threshold


class AudioEventLogic:
    """Feeds per-window scores (in ``labels`` order) and returns start/end transitions."""

    def __init__(self, source: str, labels: Sequence[str], thresholds: Mapping[str, float], *,
                 min_duration_s: Mapping[str, float] | float = 0.5, hysteresis: float = 0.1,
                 end_after_s: float = 3.0, max_event_s: float | None = 300.0,
                 hop_s: float = DEFAULT_HOP_S, model_version: str = "",
                 verifiers: Mapping[str, LabelVerifier] | None = None, sample_rate: int = 16000) -> None:
        if hysteresis < 0 or end_after_s <= 0 or hop_s <= 0:
            raise ValueError("hysteresis must be >= 0, end_after_s and hop_s > 0")
        self.source, self.labels = source, tuple(labels)
        self.hysteresis, self.end_after_s, self.hop_s = hysteresis, end_after_s, hop_s
        self.max_event_s, self.model_version = max_event_s, model_version
        self._states: dict[int, tuple[str, _LabelState]] = {}
        for col, label in enumerate(self.labels):
            if label in NON_EVENT_LABELS:
                continue
            if label not in thresholds:
                raise ValueError(f"no threshold for audio label {label!r}")
            dur = min_duration_s.get(label, 0.5) if isinstance(min_duration_s, Mapping) else min_duration_s
            verifier = (verifiers or {}).get(label)
            self._states[col] = (label, _LabelState(float(thresholds[label]), float(dur), verifier=verifier))
        checks = [v.check.seconds for _, st in self._states.values() if (v := st.verifier) is not None]
        self.sample_rate = sample_rate
        self.history = AudioHistory(max(checks), sample_rate) if checks else None
        self.verifier_calls = 0
        self.last_time: float | None = None  # the newest window's start
    @property
    def active(self) -> dict[str, Event]:
        return {label: st.active for label, st in self._states.values() if st.active is not None}

    def update(self, window_time: float, scores: Sequence[float] | np.ndarray | None,
               samples: np.ndarray | None = None) -> list[Transition]:
        """One window at ``window_time`` (its start); ``scores=None`` for a silent window.
        ``samples``: the window's audio, kept for the verifiers (without it they see a gap)."""
        if scores is not None and len(scores) != len(self.labels):
            raise ValueError(f"expected {len(self.labels)} scores, got {len(scores)}")
        self.last_time = window_time
        if self.history is not None:
            if samples is None:
                self.history.reset()
            else:
                self.history.push(window_time, samples)
        out: list[Transition] = []
        for col, (label, st) in self._states.items():
            score = 0.0 if scores is None else float(scores[col])
            out += self._step(label, st, window_time, score)
        return out

    def flush(self, t: float) -> list[Transition]:
        """End every open event at ``t`` at the latest (disconnect, shutdown)."""
        out = []
        if self.history is not None:
            self.history.reset()
        for _, st in self._states.values():
            st.run_start = st.candidate_last = None
            if st.active is not None:
                out.append(self._end(st, min(t, st.active.last_seen + self._end_after(st))))
        return out

    def adopt(self, fresh: AudioEventLogic) -> list[Transition]:
        """Become ``fresh`` (the logic of a newly swapped-in model: its labels, columns, thresholds, durations,
        verifiers and version) while keeping what this source has heard: an open event of a label both models
        have goes on (it is neither ended nor started again), a run in progress keeps counting, the verifiers'
        audio history stays. Events of labels the new model lacks end here; their transitions are returned."""
        mine = {label: st for label, st in self._states.values()}
        for label, st in fresh._states.values():
            old = mine.pop(label, None)
            if old is not None:
                st.run_start, st.run_last, st.run_peak = old.run_start, old.run_last, old.run_peak
                st.active, st.candidate_last = old.active, old.candidate_last
        t = self.last_time if self.last_time is not None else 0.0
        out = [self._end(st, min(t, st.active.last_seen + self._end_after(st)))
               for st in mine.values() if st.active is not None]
        self.labels, self._states, self.model_version = fresh.labels, fresh._states, fresh.model_version
        self.hysteresis, self.end_after_s, self.hop_s = fresh.hysteresis, fresh.end_after_s, fresh.hop_s
        if fresh.history is None or self.history is None or fresh.history.seconds > self.history.seconds:
            self.history = fresh.history
        return out

    # -- internals -------------------------------------------------------------------------------

    def _end_after(self, st: _LabelState) -> float:
        return self.end_after_s if st.verifier is None else max(self.end_after_s, st.verifier.hold_s)

    def _step(self, label: str, st: _LabelState, t: float, score: float) -> list[Transition]:
        if st.active is None:
            if st.verifier is not None:
                return self._verified_idle_step(label, st, st.verifier, t, score)
            return self._idle_step(label, st, t, score)
        ev = st.active
        heard = score >= (st.threshold - self.hysteresis if st.verifier is None else st.verifier.candidate)
        if heard:
            ev = st.active = replace(ev, last_seen=t, score=max(ev.score, score))
        if self.max_event_s is not None and t - ev.start >= self.max_event_s:
            return self._split(st, t)
        end_after = self._end_after(st)
        if not heard and t - ev.last_seen >= end_after - _EPS:
            return [self._end(st, ev.last_seen + end_after)]
        return []

    def _verified_idle_step(self, label: str, st: _LabelState, v: LabelVerifier, t: float, score: float
                            ) -> list[Transition]:
        """The CNN proposes, the pattern decides: candidate windows, and those of the next
        ``RECHECK_S`` (a pattern is complete only once its pause has been heard), run the verifier;
        elsewhere it costs nothing."""
        if self.history is None:
            return []
        if score >= v.candidate:
            st.candidate_last = t
        elif st.candidate_last is None or t - st.candidate_last > RECHECK_S + _EPS:
            return []
        spec, t0 = self.history.spectrum(v.check.seconds)
        self.verifier_calls += 1
        verdict = v.check.check_spectrum(spec)
        if not verdict.ok or verdict.onset_s is None:
            return []
        onset = t0 + verdict.onset_s
        # the newest window start at or before the onset: the window that holds the first tone
        start = t - max(0, math.ceil((t - onset) / self.hop_s - _EPS)) * self.hop_s
        st.active, st.candidate_last = Event(label, score, start=start, last_seen=t), None
        return [Transition("start", st.active)]

    def _idle_step(self, label: str, st: _LabelState, t: float, score: float) -> list[Transition]:
        in_run = st.run_start is not None and t - st.run_last <= 1.5 * self.hop_s
        if score < (st.threshold - self.hysteresis if in_run else st.threshold):
            st.run_start = None
            return []
        if not in_run:  # a new run, or one broken by a gap in window times (discontinuity)
            st.run_start, st.run_peak = t, score
        st.run_last, st.run_peak = t, max(st.run_peak, score)
        assert st.run_start is not None
        if t - st.run_start + self.hop_s < st.min_duration_s - _EPS:
            return []
        st.active = Event(label, st.run_peak, start=st.run_start, last_seen=t)
        st.run_start = None
        return [Transition("start", st.active)]

    def _split(self, st: _LabelState, t: float) -> list[Transition]:
        """Cut a very long event (a smoke alarm ringing for an hour) into bounded clips."""
        ev = st.active
        assert ev is not None and self.max_event_s is not None
        out = [self._end(st, min(t, ev.start + self.max_event_s))]
        if t - ev.last_seen < self._end_after(st):  # still sounding: continue without a gap
            st.active = replace(ev, start=t, end=None, continued=True)
            out.append(Transition("start", st.active))
        return out

    def _end(self, st: _LabelState, end: float) -> Transition:
        assert st.active is not None
        done = replace(st.active, end=max(end, st.active.start))
        st.active = None
        return Transition("end", done)


@dataclass(frozen=True, slots=True, eq=False)
class WindowResult:
    time: float  # window start, stream seconds
    rms_dbfs: float
    silent: bool
    scores: np.ndarray | None  # [len(labels)]; None where the gate skipped the model
    transitions: tuple[Transition, ...]


class AudioDetector:
    """Blocks in, per-window results out: windower -> model (loud windows only, one batch per
    block) -> event logic. One per audio source; the model may be shared between sources."""

    def __init__(self, model: ScoresModel, logic: AudioEventLogic, windower: AudioWindower) -> None:
        if tuple(model.labels) != logic.labels:
            raise ValueError(f"logic labels {logic.labels} differ from model labels {model.labels}")
        self.model, self.logic, self.windower = model, logic, windower

    def push(self, block: np.ndarray, start_time: float) -> list[WindowResult]:
        return self._score(self.windower.push(block, start_time))

    def _score(self, windows: list[Window]) -> list[WindowResult]:
        scores = score_windows(self.model, windows)
        return [WindowResult(w.time, w.rms_dbfs, w.silent, s, tuple(self.logic.update(w.time, s, w.samples)))
                for w, s in zip(windows, scores, strict=True)]

    def flush(self, t: float) -> list[Transition]:
        self.windower.reset()
        return self.logic.flush(t)

    def end(self, t: float) -> tuple[list[WindowResult], list[Transition]]:
        """End of a file at ``t``: its last second is windowed over silence (see
        :meth:`AudioWindower.end`), then every open event ends by ``t`` at the latest."""
        results = self._score(self.windower.end())
        return results, self.logic.flush(t)
