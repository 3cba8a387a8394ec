"""The audio model the hub runs, swappable between two batches, with an optional candidate in shadow.

All audio windows of all sources go through one batching thread (``Batcher("audio")``), and this slot is
what that thread calls. Everything that changes the model happens there, at the start of a batch:

* **Hot swap**: a requested model replaces the active one before the next batch is scored. Each batch is
  scored by exactly one model, and each window is in exactly one batch, so no window is lost or scored
  twice. A source's event logic adopts the new model's labels and settings before the first scores of the
  new model reach it; an event that is sounding goes on (:meth:`AudioEventLogic.adopt`).
* **Shadow**: a candidate scores the same loud windows beside the active model; its events go through its
  own logic per source and are only counted and kept for comparison, never acted on.
* **Fallback**: while a freshly promoted model is watched, the model it replaced is kept loaded. If the new
  model raises or returns non-finite scores, the slot switches back at once and re-scores the same batch
  with the previous model: a broken model costs no window. The failure is reported to the rollout manager.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..audio import AudioEventLogic, AudioEventModel, Window, score_windows
from .camera import AudioSink, AudioWindows

log = logging.getLogger(__name__)

BuildLogic = Callable[[str, AudioEventModel], AudioEventLogic]


@dataclass(frozen=True)
class ShadowEvent:
    source: str
    label: str
    kind: str  # "start" or "end"
    start: float  # wall-clock epoch seconds
    end: float | None


@dataclass
class ShadowRun:
    """A candidate model hearing what the active one hears, acting on nothing."""

    model: AudioEventModel
    build: BuildLogic
    windows: int = 0  # every window offered (silent ones too)
    scored: int = 0  # loud windows the candidate scored
    starts: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    _logics: dict[int, tuple[AudioSink, AudioEventLogic]] = field(default_factory=dict)
    _events: list[ShadowEvent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hear(self, items: Sequence[AudioWindows], windows: list[Window]) -> None:
        scores = iter(_checked(score_windows(self.model, windows)))
        heard = []
        for item in items:
            own = [next(scores) for _ in item.windows]
            sink = item.sink
            entry = self._logics.get(id(sink))
            if entry is None or entry[0] is not sink:
                entry = self._logics[id(sink)] = (sink, self.build(sink.name, self.model))
            logic = entry[1]
            paired = getattr(sink, "paired", None)  # a microphone paired with a camera records the camera's clip
            source = paired.name if paired is not None else sink.name
            for w, s in zip(item.windows, own, strict=True):
                for tr in logic.update(w.time, s, w.samples):
                    ev = tr.event
                    end = sink.wall_of(ev.until) if tr.kind == "end" else None
                    heard.append(ShadowEvent(source, ev.label, tr.kind, sink.wall_of(ev.start), end))
        with self._lock:
            self.windows += len(windows)
            self.scored += sum(not w.silent for w in windows)
            self.starts.update(e.label for e in heard if e.kind == "start")
            self._events += heard

    def take_events(self) -> list[ShadowEvent]:
        """The events heard since the last call (the manager writes them to its ledger)."""
        with self._lock:
            events, self._events = self._events, []
        return events


class AudioModelSlot:
    def __init__(self, model: AudioEventModel, build: BuildLogic, *,
                 on_swap: Callable[[AudioEventModel], None] | None = None) -> None:
        self.active, self.build, self.on_swap = model, build, on_swap
        self.fallback: AudioEventModel | None = None
        self.shadow: ShadowRun | None = None
        self.failure: tuple[str, str] | None = None  # (version, error) of a model the slot switched away from
        self.windows: Counter[str] = Counter()  # windows per model version (silent ones too)
        self.scored: Counter[str] = Counter()  # loud windows scored per model version
        self._lock = threading.Lock()
        self._swap: tuple[AudioEventModel, AudioEventModel | None] | None = None
        self._shadow_request: tuple[ShadowRun | None] | None = None

    # -- control thread --------------------------------------------------------------------------------

    def request_swap(self, model: AudioEventModel, *, fallback: AudioEventModel | None = None) -> None:
        """Run ``model`` from the next batch on; keep ``fallback`` loaded to switch back to if it fails."""
        with self._lock:
            self._swap = (model, fallback)

    def request_shadow(self, model: AudioEventModel | None) -> ShadowRun | None:
        """Start (or, with None, stop) a shadow run from the next batch on; returns the new run."""
        run = ShadowRun(model, self.build) if model is not None else None
        with self._lock:
            self._shadow_request = (run,)
        return run

    def release_fallback(self) -> None:
        with self._lock:
            if self._swap is None:
                self.fallback = None

    @property
    def pending(self) -> bool:
        with self._lock:
            return self._swap is not None or self._shadow_request is not None

    # -- audio thread ------------------------------------------------------------------------------------

    def audio_batch(self, items: Sequence[AudioWindows]) -> list[list[tuple[float, np.ndarray | None]]]:
        """Score the windows of every source with the active model (one call), hand each source its scores,
        then let a shadow candidate hear the same windows."""
        self._apply_requests()
        windows = [w for item in items for w in item.windows]
        model, scores = self._score(windows)
        self.windows[model.version] += len(windows)
        self.scored[model.version] += sum(not w.silent for w in windows)
        it = iter(scores)
        out = []
        for item in items:
            own = [next(it) for _ in item.windows]
            if item.sink.audio_logic().model_version != model.version:
                item.sink.adopt_audio_logic(self.build(item.sink.name, model))
            item.sink.on_audio(item.windows, own)
            out.append([(w.time, s) for w, s in zip(item.windows, own, strict=True)])
        self._shadow_hear(items, windows)
        return out

    def _apply_requests(self) -> None:
        with self._lock:
            swap, self._swap = self._swap, None
            shadow, self._shadow_request = self._shadow_request, None
        if swap is not None:
            self._switch(*swap)
        if shadow is not None:
            self.shadow = shadow[0]

    def _switch(self, model: AudioEventModel, fallback: AudioEventModel | None) -> None:
        old = self.active
        self.active, self.fallback = model, fallback
        log.info("audio model %s replaces %s from the next window on", model.version, old.version)
        if self.on_swap is not None:
            self.on_swap(model)

    def _score(self, windows: list[Window]) -> tuple[AudioEventModel, list[np.ndarray | None]]:
        model = self.active
        try:
            return model, _checked(score_windows(model, windows))
        except Exception as exc:  # onnxruntime raises many kinds; any of them means this model is unusable
            if self.fallback is None:
                raise
            reason = f"{type(exc).__name__}: {exc}"
            log.error("audio model %s failed (%s); switching back to %s for this and every later window",
                      model.version, reason, self.fallback.version)
            self.failure = (model.version, reason)
            self._switch(self.fallback, None)
            return self.active, _checked(score_windows(self.active, windows))

    def _shadow_hear(self, items: Sequence[AudioWindows], windows: list[Window]) -> None:
        run = self.shadow
        if run is None or run.error is not None:
            return
        try:
            run.hear(items, windows)
        except Exception as exc:  # the candidate failed: it stops hearing; the manager rejects it
            run.error = f"{type(exc).__name__}: {exc}"
            log.error("shadow audio model %s failed (%s); it hears nothing more", run.model.version, run.error)


def _checked(scores: list[np.ndarray | None]) -> list[np.ndarray | None]:
    if any(s is not None and not np.all(np.isfinite(s)) for s in scores):
        raise FloatingPointError("the model returned non-finite scores")
    return scores
