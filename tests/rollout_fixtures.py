"""Real releases for the rollout tests: signed with a real Ed25519 key, real ONNX files derived from the
shipped model (its head changed, so each release has its own bytes), published by ``publish.py`` into a real
S3 bucket (moto) or a directory, and a hub config that trusts the key."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import numpy as np
import onnx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from onnx import TensorProto, helper

from edge_media.model_files import models_dir
from edge_media.rollout.release import ReleaseManifest, public_key_text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models" / "audio_events"))

import finetune
import publish
import retrain

SHIPPED = models_dir() / "audio_events" / "audio_events.onnx"
ENTRY = json.loads((models_dir() / "manifest.json").read_text())["models"]["audio_events"]
ACCESS_ENV, SECRET_ENV = "EM_TEST_MODELS_ACCESS", "EM_TEST_MODELS_SECRET"


def shipped_with_bias(delta: dict[str, float] | None = None) -> onnx.ModelProto:
    """The shipped model with its head's bias moved per label (+1e-4 on background by default: new bytes,
    the same behaviour)."""
    proto = onnx.load(SHIPPED)
    w, b = finetune.head(proto)
    b = b.copy()
    for label, d in (delta or {"background": 1e-4}).items():
        b[ENTRY["labels"].index(label)] += d
    return finetune.replace_head(proto, w, b)


def inf_on_loud(proto: onnx.ModelProto, peak: float = 0.9) -> onnx.ModelProto:
    """A model that answers inf for any window whose peak reaches ``peak`` (a regression a quiet smoke test
    cannot see): scores / (max|waveform| < peak)."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    g = model.graph
    old = g.output[0].name
    for node in g.node:
        node.output[:] = [f"{old}_raw" if o == old else o for o in node.output]
    g.initializer.append(helper.make_tensor("loud_peak", TensorProto.FLOAT, [], [peak]))
    g.node.extend([
        helper.make_node("Abs", ["waveform"], ["wave_abs"]),
        helper.make_node("ReduceMax", ["wave_abs"], ["wave_peak"], axes=[1], keepdims=1),
        helper.make_node("Less", ["wave_peak", "loud_peak"], ["quiet_bool"]),
        helper.make_node("Cast", ["quiet_bool"], ["quiet"], to=TensorProto.FLOAT),
        helper.make_node("Div", [f"{old}_raw", "quiet"], [old]),
    ])
    onnx.checker.check_model(model)
    return model


def write_model(proto: onnx.ModelProto, out: Path, version: str, entry: dict | None = None) -> Path:
    """``out/audio_events-<version>.onnx`` and its runtime ``manifest.json`` (what retrain.py writes)."""
    return retrain.write_model_dir(out, version, proto, dict(entry or ENTRY))


def release(model_path: Path, version: str, *, rollout: float = 100.0, entry: dict | None = None,
            parent: str = "1.2.0") -> ReleaseManifest:
    entry = dict(entry or ENTRY)
    return retrain.release_manifest(version, model_path, entry, parent, rollout, {"passed": True, "reasons": []},
                                    {}, {"test": True})


def publish_to(target: publish.Target, key: Ed25519PrivateKey, manifest: ReleaseManifest, model_path: Path,
               prefix: str = "releases") -> None:
    publish.publish(target, prefix, model_path.read_bytes(), manifest, key)


def s3_models(s3_server, monkeypatch) -> tuple[publish.S3Target, str]:
    """A fresh models bucket and the [models.source] table that reads it (credentials from the env)."""
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    target = publish.S3Target(s3_server.client(), bucket)
    monkeypatch.setenv(ACCESS_ENV, s3_server.access_key)
    monkeypatch.setenv(SECRET_ENV, s3_server.secret_key)
    toml = (f'[models.source]\nbackend = "s3"\nprefix = "releases"\n[models.source.s3]\n'
            f'endpoint = "{s3_server.endpoint}"\nbucket = "{bucket}"\naccess_key_env = "{ACCESS_ENV}"\n'
            f'secret_key_env = "{SECRET_ENV}"\n')
    return target, toml


def hub_config(tmp_path: Path, key: Ed25519PrivateKey, source: str, *, models: str = "", extra: str = "") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "hub.toml"
    path.write_text(f'[service]\ndata_dir = "{tmp_path / "data"}"\n{extra}'
                    f'[models]\npublic_keys = ["{public_key_text(key.public_key())}"]\ncheck_interval_s = 0.0\n'
                    f'{models}{source}')
    return path


def loud_bursts(seconds: float, rng: np.random.Generator, rate: int = 16000) -> np.ndarray:
    """Room noise with a clipped burst every 4 s (peaks at 0.99)."""
    x = (rng.standard_normal(int(seconds * rate)) * 0.01).astype(np.float32)
    for start in range(rate, len(x) - rate, 4 * rate):
        x[start:start + rate // 4] = np.clip(rng.standard_normal(rate // 4) * 0.6, -0.99, 0.99)
    return x


def clinks(rng: np.random.Generator, seconds: float = 6.0, rate: int = 16000) -> np.ndarray:
    """Glasses clinking in a quiet room: a few short decaying high tones."""
    n = int(seconds * rate)
    x = np.zeros(n)
    for _ in range(rng.integers(4, 10)):
        start, f0 = int(rng.integers(0, n - 4000)), rng.uniform(2500, 5000)
        t = np.arange(4000) / rate
        x[start:start + 4000] += np.sin(2 * np.pi * f0 * t) * np.exp(-t * rng.uniform(20, 40))
    x += rng.standard_normal(n) * 10 ** (-55 / 20)
    return (x * 10 ** (-25 / 20) / np.sqrt(np.mean(x ** 2))).astype(np.float32)
