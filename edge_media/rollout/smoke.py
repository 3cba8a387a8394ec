"""The smoke test every new audio model passes before it may run beside the active one.

The model hears the shipped sample clips through the hub's own chain (file decoder, windower, silence gate,
event logic with the hub's ``[audio]`` settings and verifiers): it must raise ``smoke_co_alarm`` on the
synthetic T3 alarm and nothing at all on the quiet room and on the alarm *clock* (a real recording, the
classic confuser). A model that fails any of these is refused before shadow mode: a broken export, a label
mix-up or thresholds that fire on hum would otherwise reach a home.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..audio.events import AudioDetector
from ..audio.model import AudioEventModel
from ..audio.setup import new_logic, new_windower
from ..audio.sources import AudioFileSource, AudioSourceError
from ..config import AudioConfig
from ..model_files import models_dir

ALARM_LABEL = "smoke_co_alarm"


@dataclass(frozen=True)
class SmokeCase:
    file: str
    expect: str | None  # the label that must start; None: no event of any label may start


CASES = (SmokeCase("smoke_alarm_t3_synthetic.ogg", ALARM_LABEL),
         SmokeCase("quiet_room_synthetic.ogg", None),
         SmokeCase("background_alarm_clock_freedesktop.oga", None))


@dataclass(frozen=True)
class SmokeResult:
    passed: bool
    findings: tuple[str, ...]  # one line per case: what was heard

    def summary(self) -> str:
        return "; ".join(self.findings)


def samples_dir() -> Path:
    return models_dir() / "audio_events" / "samples"


def heard(model: AudioEventModel, path: Path, cfg: AudioConfig) -> list[str]:
    """Labels of the events the hub's chain starts on the clip ``path``."""
    detector = AudioDetector(model, new_logic("smoke-test", model, cfg), new_windower(model, cfg))
    starts: list[str] = []
    last = 0.0
    for block in AudioFileSource(path):
        for result in detector.push(block.samples, block.time):
            starts += [tr.event.label for tr in result.transitions if tr.kind == "start"]
        last = block.time + len(block.samples) / model.info.sample_rate
    results, ends = detector.end(last)
    starts += [tr.event.label for r in results for tr in r.transitions if tr.kind == "start"]
    return starts


def smoke_test(model: AudioEventModel, cfg: AudioConfig, directory: Path | None = None) -> SmokeResult:
    directory = directory or samples_dir()
    findings, passed = [], True
    for case in CASES:
        if case.expect is not None and case.expect not in model.labels:
            findings.append(f"{case.file}: the model has no {case.expect} label")
            passed = False
            continue
        try:
            labels = heard(model, directory / case.file, cfg)
        except AudioSourceError as exc:
            findings.append(f"{case.file}: cannot be read ({exc})")
            passed = False
            continue
        ok = case.expect in labels if case.expect else not labels
        passed &= ok
        said = ", ".join(sorted(set(labels))) or "nothing"
        want = f"must raise {case.expect}" if case.expect else "must stay quiet"
        findings.append(f"{case.file}: {'ok' if ok else 'FAILED'} ({want}; heard {said})")
    return SmokeResult(passed, tuple(findings))
