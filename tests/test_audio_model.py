"""The shipped audio-event ONNX (models/audio_events/): manifest, I/O contract, and behaviour on
signals generated here with numpy (independently of the training code's synthesiser)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "models" / "manifest.json"
SR = 16000
PRODUCT = ["smoke_co_alarm", "glass_break", "dog_bark", "baby_cry", "scream", "siren"]


@pytest.fixture(scope="module")
def entry() -> dict:
    return json.loads(MANIFEST.read_text())["models"]["audio_events"]


@pytest.fixture(scope="module")
def model_path(entry) -> Path:
    return MANIFEST.parent / entry["file"]


@pytest.fixture(scope="module")
def session(model_path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def run(session, entry, windows: np.ndarray) -> np.ndarray:
    return session.run([entry["output"]], {entry["input"]: windows.astype(np.float32)})[0]


def pink_noise(n: int, rng: np.random.Generator, dbfs: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    x = np.fft.irfft(spec / np.sqrt(f), n=n)
    return x / np.sqrt(np.mean(x ** 2)) * 10 ** (dbfs / 20)


def t3_alarm(seconds: float, freq: float, rng: np.random.Generator) -> np.ndarray:
    """Temporal-three smoke alarm: (0.5 s on, 0.5 s off) x 3, 1.5 s off; square-ish piezo tone."""
    t = np.arange(int(seconds * SR)) / SR
    phase = t % 4.0
    on = (phase < 2.5) & ((phase % 1.0) < 0.5)
    tone = np.tanh(3 * np.sin(2 * np.pi * freq * t))  # clipped sine: odd harmonics like a piezo
    return 0.2 * tone * on + pink_noise(len(t), rng, -45)


def windows_of(x: np.ndarray, n: int, hop: int) -> np.ndarray:
    return np.stack([x[s:s + n] for s in range(0, len(x) - n + 1, hop)])


def test_manifest_entry(entry, model_path):
    assert entry["kind"] == "audio_events"
    assert entry["sample_rate"] == SR and entry["window_samples"] == 15600
    assert entry["input"] == "waveform" and entry["output"] == "scores"
    assert entry["activation"] in ("sigmoid", "softmax")
    assert set(PRODUCT) <= set(entry["labels"]) and "background" in entry["labels"]
    assert set(entry["thresholds"]) == set(PRODUCT)
    assert all(0.0 < v < 1.0 for v in entry["thresholds"].values())
    assert model_path.stat().st_size <= 5 * 1024 * 1024


def test_manifest_sha256_matches_file(entry, model_path):
    assert hashlib.sha256(model_path.read_bytes()).hexdigest() == entry["sha256"]


def test_motion_entry_kept():
    assert "motion" in json.loads(MANIFEST.read_text())["models"]


def test_io_contract(session, entry):
    (inp,) = session.get_inputs()
    (out,) = session.get_outputs()
    assert inp.name == "waveform" and inp.type == "tensor(float)" and inp.shape[1] == 15600
    assert out.name == "scores" and out.type == "tensor(float)"
    for n in (1, 3):
        x = np.random.default_rng(n).standard_normal((n, 15600)).astype(np.float32) * 0.1
        scores = run(session, entry, x)
        assert scores.shape == (n, len(entry["labels"])) and scores.dtype == np.float32
        assert np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1))


@pytest.mark.parametrize("freq", [3100.0, 3400.0])
def test_t3_smoke_alarm_triggers_within_one_second(session, entry, freq):
    rng = np.random.default_rng(int(freq))
    x = np.concatenate([pink_noise(SR, rng, -45), t3_alarm(4.0, freq, rng)])  # onset at 1.0 s
    hop = SR // 4
    scores = run(session, entry, windows_of(x, 15600, hop))
    j = entry["labels"].index("smoke_co_alarm")
    # windows that end within 1 s after the onset (end <= 2.0 s)
    early = [i for i in range(len(scores)) if i * hop + 15600 <= 2 * SR]
    assert max(scores[i, j] for i in early) >= entry["thresholds"]["smoke_co_alarm"], scores[:, j]


@pytest.mark.parametrize("signal", ["silence", "pink_-30dBFS", "pink_-60dBFS", "brown_-30dBFS"])
def test_quiet_and_noise_do_not_trigger(session, entry, signal):
    rng = np.random.default_rng(5)
    n = 4 * SR
    if signal == "silence":
        x = np.zeros(n)
    elif signal.startswith("pink"):
        x = pink_noise(n, rng, float(signal.split("_")[1][:-4]))
    else:
        x = np.cumsum(rng.standard_normal(n))
        x -= np.convolve(x, np.ones(801) / 801, mode="same")
        x = x / np.sqrt(np.mean(x ** 2)) * 10 ** (-30 / 20)
    scores = run(session, entry, windows_of(x, 15600, SR // 2))
    for label in PRODUCT:
        j = entry["labels"].index(label)
        assert scores[:, j].max() < entry["thresholds"][label], (label, scores[:, j].max())


def test_sample_clips_are_shipped_with_licences():
    samples = REPO / "models" / "audio_events" / "samples"
    readme = (samples / "README.md").read_text()
    files = [p for p in samples.iterdir() if p.suffix in (".ogg", ".oga", ".flac", ".wav")]
    assert files and sum(p.stat().st_size for p in files) < 256_000  # 5 real clips + the 2 smoke-test clips
    for p in files:
        assert p.name in readme
