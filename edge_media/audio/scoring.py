"""The one audio scoring path: the silence gate, then one batched model call for the loud windows.

Every consumer — the service's audio batcher (windows of many sources at once), the per-source
:class:`~edge_media.audio.events.AudioDetector` of ``analyze`` and the benchmarks — scores through
:func:`score_windows`, so the gate and the batching cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .windows import Window


class ScoresModel(Protocol):
    @property
    def labels(self) -> tuple[str, ...]: ...

    def predict(self, windows: np.ndarray) -> np.ndarray: ...


def score_windows(model: ScoresModel, windows: Sequence[Window]) -> list[np.ndarray | None]:
    """Per window, in order: its scores (``[len(labels)]``), or None for a silent window.

    Silence never reaches the model: the gate is what keeps a quiet house nearly free."""
    loud = [w.samples for w in windows if not w.silent]
    scores = iter(model.predict(np.stack(loud)) if loud else ())
    return [None if w.silent else next(scores) for w in windows]
