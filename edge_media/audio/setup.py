"""Build the audio model and per-source chains from the ``[audio]`` config section."""

from __future__ import annotations

import logging

from ..config import AudioConfig
from ..config.audio import DEFAULT_MIN_DURATION_S
from ..config.loader import ConfigError
from ..model_files import ModelIntegrityError
from .events import AudioEventLogic
from .labels import LabelMapError
from .model import AudioEventModel
from .verify import DEFAULT_VERIFIERS, LabelVerifier
from .windows import AudioWindower

log = logging.getLogger(__name__)


def load_audio_model(cfg: AudioConfig, *, threads: int = 1) -> AudioEventModel | None:
    """The configured model, or None (logged) when it cannot be used: the service then runs without
    audio events rather than not at all. A model whose sha256 does not match is refused here."""
    try:
        if cfg.model is not None:
            model = AudioEventModel.from_yamnet(cfg.model, class_map=cfg.class_map, threads=threads)
        else:
            model = AudioEventModel.from_manifest(threads=threads)
    except (ModelIntegrityError, LabelMapError, OSError, ValueError, KeyError) as exc:
        log.error("audio events disabled: cannot load the audio model (%s)", exc)
        return None
    check_label_keys(model, cfg)
    return model


def check_label_keys(model: AudioEventModel, cfg: AudioConfig) -> None:
    """Per-label settings must name the model's labels: a typo would silently keep the default."""
    per_label = {"thresholds": cfg.thresholds,
                 "min_duration_s": cfg.min_duration_s if isinstance(cfg.min_duration_s, dict) else {},
                 "candidate_thresholds": cfg.candidate_thresholds}
    problems = [f"audio.{field}.{key}: not a label of the audio model (its labels: {', '.join(model.labels)})"
                for field, values in per_label.items() for key in values if key not in model.labels]
    problems += [f"audio.{field}.{key}: {key} has no verifier (verifiers: {', '.join(DEFAULT_VERIFIERS)})"
                 for field, keys in (("verify", cfg.verify), ("candidate_thresholds", cfg.candidate_thresholds))
                 for key in keys if key not in DEFAULT_VERIFIERS]
    if problems:
        raise ConfigError("[audio]", problems)


def new_windower(model: AudioEventModel, cfg: AudioConfig) -> AudioWindower:
    rate = model.info.sample_rate
    return AudioWindower(window_samples=model.info.window_samples, hop_samples=round(cfg.hop_s * rate),
                         sample_rate=rate, silence_dbfs=cfg.silence_dbfs)


def min_durations(model: AudioEventModel, cfg: AudioConfig) -> dict[str, float]:
    """Per label: the config's number (all labels) or entry, else the model's, else the default."""
    if isinstance(cfg.min_duration_s, (int, float)):
        return {label: float(cfg.min_duration_s) for label in model.labels}
    own = cfg.min_duration_s or {}
    return {label: float(own.get(label, model.info.min_duration_s.get(label, DEFAULT_MIN_DURATION_S)))
            for label in model.labels}


def verifiers(model: AudioEventModel, cfg: AudioConfig) -> dict[str, LabelVerifier]:
    """The pattern checks of the labels in ``verify`` that the model has."""
    out = {}
    for label, v in DEFAULT_VERIFIERS.items():
        if label in model.labels and label in cfg.verify:
            cand = cfg.candidate_thresholds.get(label, v.candidate)
            out[label] = LabelVerifier(v.check, cand, v.hold_s)
    return out


def new_logic(source: str, model: AudioEventModel, cfg: AudioConfig) -> AudioEventLogic:
    thresholds = {**model.info.thresholds, **cfg.thresholds}
    return AudioEventLogic(source, model.labels, thresholds, min_duration_s=min_durations(model, cfg),
                           hysteresis=cfg.hysteresis, end_after_s=cfg.end_after_s, hop_s=cfg.hop_s,
                           model_version=model.version, verifiers=verifiers(model, cfg),
                           sample_rate=model.info.sample_rate)
