"""[audio] settings applied to the model: per-label minimum durations (manifest defaults, config
overrides) and refusal of per-label settings that name no label of the model."""

from __future__ import annotations

import pytest

from edge_media.audio.model import AudioEventModel
from edge_media.audio.setup import load_audio_model, min_durations, new_logic
from edge_media.config import AudioConfig
from edge_media.config.audio import DEFAULT_MIN_DURATION_S
from edge_media.config.loader import ConfigError
from edge_media.model_files import MODELS_DIR_ENV

from audio_fixtures import PRODUCT, write_models_dir


@pytest.fixture
def model(tmp_path, monkeypatch) -> AudioEventModel:
    root = write_models_dir(tmp_path / "models", min_duration_s={"smoke_co_alarm": 0.9, "glass_break": 0.0})
    monkeypatch.setenv(MODELS_DIR_ENV, str(root))
    return AudioEventModel.from_manifest()


def test_manifest_minimum_durations_are_the_defaults(model):
    got = min_durations(model, AudioConfig())
    assert got["smoke_co_alarm"] == 0.9 and got["glass_break"] == 0.0
    others = [label for label in PRODUCT if label not in ("smoke_co_alarm", "glass_break")]
    assert others and all(got[label] == DEFAULT_MIN_DURATION_S for label in others)


def test_config_number_applies_to_every_label(model):
    assert set(min_durations(model, AudioConfig(min_duration_s=2)).values()) == {2.0}


def test_config_table_overrides_only_its_labels(model):
    got = min_durations(model, AudioConfig(min_duration_s={"glass_break": 0.5}))
    assert got["glass_break"] == 0.5 and got["smoke_co_alarm"] == 0.9


def test_logic_uses_the_merged_durations(model):
    # glass_break needs one window (0.0 s), smoke_co_alarm two (0.9 s at a 0.4875 s hop); without the
    # verifier, which would ask for the alarm's pattern instead (test_audio_verify.py)
    logic = new_logic("porch", model, AudioConfig(verify=[]))
    loud = [0.0] * len(model.labels)
    for label in ("glass_break", "smoke_co_alarm"):
        loud[model.labels.index(label)] = 0.99
    first = {t.event.label for t in logic.update(0.0, loud)}
    second = {t.event.label for t in logic.update(0.4875, loud)}
    assert first == {"glass_break"} and second == {"smoke_co_alarm"}


@pytest.mark.parametrize("cfg, field", [
    (AudioConfig(thresholds={"smoke_alarm": 0.5}), "audio.thresholds.smoke_alarm"),
    (AudioConfig(min_duration_s={"dogbark": 1.0}), "audio.min_duration_s.dogbark"),
])
def test_per_label_setting_for_an_unknown_label_names_the_field(model, cfg, field):
    with pytest.raises(ConfigError) as info:
        load_audio_model(cfg)
    assert field in str(info.value) and "smoke_co_alarm" in str(info.value)  # lists the real labels


def test_minimum_duration_bounds_are_checked():
    with pytest.raises(ValueError, match="min_duration_s"):
        AudioConfig(min_duration_s={"dog_bark": -1.0})
    with pytest.raises(ValueError, match="min_duration_s"):
        AudioConfig(min_duration_s=31.0)
