"""Build the audio model and per-source chains from the ``[audio]`` config section."""

from __future__ import annotations

import logging

from ..config import AudioConfig
from ..models import ModelIntegrityError
from .events import AudioEventLogic
from .labels import LabelMapError
from .model import AudioEventModel
from .windows import AudioWindower

log = logging.getLogger(__name__)


def load_audio_model(cfg: AudioConfig, *, threads: int = 1) -> AudioEventModel | None:
    """The configured model, or None (logged) when it cannot be used: the service then runs without
    audio events rather than not at all. A model whose sha256 does not match is refused here."""
    try:
        if cfg.model is not None:
            return AudioEventModel.from_yamnet(cfg.model, class_map=cfg.class_map, threads=threads)
        return AudioEventModel.from_manifest(threads=threads)
    except (ModelIntegrityError, LabelMapError, OSError, ValueError, KeyError) as exc:
        log.error("audio events disabled: cannot load the audio model (%s)", exc)
        return None


def new_windower(model: AudioEventModel, cfg: AudioConfig) -> AudioWindower:
    rate = model.info.sample_rate
    return AudioWindower(window_samples=model.info.window_samples, hop_samples=round(cfg.hop_s * rate),
                         sample_rate=rate, silence_dbfs=cfg.silence_dbfs)


def new_logic(source: str, model: AudioEventModel, cfg: AudioConfig) -> AudioEventLogic:
    thresholds = {**model.info.thresholds, **cfg.thresholds}
    return AudioEventLogic(source, model.labels, thresholds, min_duration_s=cfg.min_duration_s,
                           hysteresis=cfg.hysteresis, end_after_s=cfg.end_after_s, hop_s=cfg.hop_s,
                           model_version=model.version)
