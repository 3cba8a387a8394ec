"""Real test audio and small real ONNX graphs for the audio runtime tests.

Audio is synthesised with numpy (a T3 smoke-alarm pattern in pink noise, digital silence) and
encoded with PyAV (AAC in MP4, FLAC, or AAC beside an H.264 track like a camera's), so tests
exercise FFmpeg's real decoders and resampler. The ONNX graphs are built with ``onnx.helper``
and have the signatures of the real models: our manifest model (waveform [N, 15600] -> [N, 8])
and a YAMNet-style one (waveform -> per-frame scores over 521 AudioSet classes).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge_media.audio import AudioBlock, AudioFileSource

ALARM_HZ = 3100.0
OUR_LABELS = ["background", "smoke_co_alarm", "glass_break", "dog_bark", "baby_cry", "scream",
              "siren", "speech"]
PRODUCT = OUR_LABELS[1:7]
WINDOW = 15600


# -- audio ---------------------------------------------------------------------------------------

def pink_noise(n: int, rate: int, dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise of RMS ``dbfs``, shaped in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / rate)
    f[0] = f[1]
    x = np.fft.irfft(spec / np.sqrt(f), n=n)
    return (x / np.sqrt(np.mean(x**2)) * 10 ** (dbfs / 20)).astype(np.float32)


def t3_pattern(n: int, rate: int) -> np.ndarray:
    """Gate of the temporal-three alarm: (0.5 s on, 0.5 s off) x 3, then 1.5 s off; repeats."""
    phase = (np.arange(n) / rate) % 4.0
    return ((phase < 2.5) & (phase % 1.0 < 0.5)).astype(np.float32)


def alarm_scene(rate: int, *, silence_s: float = 2.0, lead_noise_s: float = 2.0,
                alarm_s: float = 8.0, tail_s: float = 3.0, level: float = 0.25,
                noise_dbfs: float = -40.0, seed: int = 7) -> tuple[np.ndarray, float]:
    """Digital silence, then pink noise with a 3.1 kHz T3 alarm; returns (samples, onset seconds).
    The hub's verifier confirms a T3 alarm once the next cycle's first pulse sounds, 4 s after the
    onset: a scene that must raise an alarm holds at least ``alarm_s=4.5``."""
    rng = np.random.default_rng(seed)
    onset = silence_s + lead_noise_s
    n_total = round((onset + alarm_s + tail_s) * rate)
    n_silence, n_onset, n_alarm = (round(x * rate) for x in (silence_s, onset, alarm_s))
    out = np.zeros(n_total, np.float32)
    out[n_silence:] = pink_noise(n_total - n_silence, rate, noise_dbfs, rng)
    t = np.arange(n_alarm) / rate
    tone = level * np.sin(2 * np.pi * ALARM_HZ * t) * t3_pattern(n_alarm, rate)
    out[n_onset : n_onset + n_alarm] += tone.astype(np.float32)
    return out, onset


def encode_audio(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Encode mono float samples: AAC for .mp4/.m4a, FLAC for .flac, Opus for .ogg."""
    codec = {".mp4": "aac", ".m4a": "aac", ".flac": "flac", ".ogg": "libopus"}[Path(path).suffix]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        _encode_samples(out, stream, samples, rate)
        for pkt in stream.encode(None):
            out.mux(pkt)
    return Path(path)


def _encode_samples(out, stream, samples: np.ndarray, rate: int, start: int = 0, stop: int | None = None
                    ) -> int:
    """Encode samples[start:stop] in the codec's frame size; returns the next sample index."""
    stop = len(samples) if stop is None else min(stop, len(samples))
    size = stream.codec_context.frame_size or 1024
    i = start
    while i + size <= stop or (stop == len(samples) and i < stop):
        chunk = np.ascontiguousarray(samples[i : i + size], np.float32)
        # PyAV converts float frames to the encoder's own sample format and frame size.
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, i, Fraction(1, rate)
        for pkt in stream.encode(frame):
            out.mux(pkt)
        i += len(chunk)
    return i


def make_camera_clip(path: Path, samples: np.ndarray, rate: int = 48000, fps: int = 10,
                     size: tuple[int, int] = (128, 96)) -> Path:
    """An H.264 + AAC file (like a camera's stream) whose audio track is ``samples``."""
    duration = len(samples) / rate
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
        vs.time_base = Fraction(1, fps)
        vs.options = {"preset": "ultrafast", "bf": "0"}
        aus = out.add_stream("aac", rate=rate)
        aus.layout = "mono"
        img = np.full((size[1] * 3 // 2, size[0]), 100, np.uint8)
        pos = 0
        for i in range(int(duration * fps)):
            frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for pkt in vs.encode(frame):
                out.mux(pkt)
            pos = _encode_samples(out, aus, samples, rate, pos, int((i + 1) * rate / fps))
        _encode_samples(out, aus, samples, rate, pos)
        for stream in (vs, aus):
            for pkt in stream.encode(None):
                out.mux(pkt)
    return Path(path)


# -- ONNX graphs ---------------------------------------------------------------------------------

def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def build_tone_model(path: Path, *, freq: float = ALARM_HZ, logits: bool = False) -> Path:
    """Our model's signature: waveform [N, 15600] -> scores [N, 8] (OUR_LABELS).

    A real detector of one thing: ``smoke_co_alarm`` is the share of the window's energy in the
    DFT bin at ``freq`` (about the fraction of the window the tone sounds), ``background`` the rest.
    """
    t = np.arange(WINDOW) / 16000.0
    basis = np.stack([np.cos(2 * np.pi * freq * t), np.sin(2 * np.pi * freq * t)], 1).astype(np.float32)
    onehot = np.zeros((2, len(OUR_LABELS)), np.float32)
    onehot[0, OUR_LABELS.index("smoke_co_alarm")] = 1.0
    onehot[1, OUR_LABELS.index("background")] = 1.0
    consts = {"basis": basis, "half": np.float32(WINDOW / 2), "eps": np.float32(1e-12),
              "one": np.float32(1.0), "onehot": onehot}
    nodes = [
        helper.make_node("MatMul", ["waveform", "basis"], ["proj"]),
        helper.make_node("ReduceSumSquare", ["proj"], ["tone"], axes=[1], keepdims=1),
        helper.make_node("ReduceSumSquare", ["waveform"], ["energy"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["energy", "half"], ["scaled"]),
        helper.make_node("Add", ["scaled", "eps"], ["denom"]),
        helper.make_node("Div", ["tone", "denom"], ["ratio0"]),
        helper.make_node("Min", ["ratio0", "one"], ["ratio"]),
        helper.make_node("Sub", ["one", "ratio"], ["rest"]),
        helper.make_node("Concat", ["ratio", "rest"], ["pair"], axis=1),
        helper.make_node("MatMul", ["pair", "onehot"], ["probs"]),
    ]
    if logits:  # the same scores as logits, for a manifest that declares activation "none"
        nodes += [helper.make_node("Sub", ["one", "probs"], ["q"]),
                  helper.make_node("Add", ["q", "eps"], ["q2"]),
                  helper.make_node("Add", ["probs", "eps"], ["p2"]),
                  helper.make_node("Div", ["p2", "q2"], ["odds"]),
                  helper.make_node("Log", ["odds"], ["scores"])]
    else:
        nodes.append(helper.make_node("Identity", ["probs"], ["scores"]))
    graph = helper.make_graph(
        nodes, "tone_detector",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["N", WINDOW])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", len(OUR_LABELS)])],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()])
    return _save(graph, path)


def write_models_dir(root: Path, *, logits: bool = False, thresholds: dict | None = None,
                     min_duration_s: dict | None = None) -> Path:
    """A models/ directory with a manifest whose ``audio_events`` entry is the tone model."""
    (root / "audio_events").mkdir(parents=True, exist_ok=True)
    path = build_tone_model(root / "audio_events" / "audio_events.onnx", logits=logits)
    entry = {
        "file": "audio_events/audio_events.onnx", "version": "0.0.1-test",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "labels": OUR_LABELS,
        "product_labels": PRODUCT, "sample_rate": 16000, "window_samples": WINDOW,
        "input": "waveform", "output": "scores", "activation": "none" if logits else "sigmoid",
        "thresholds": thresholds or {label: 0.2 for label in PRODUCT},
    }
    if min_duration_s is not None:
        entry["min_duration_s"] = min_duration_s
    (root / "manifest.json").write_text(json.dumps({"models": {"audio_events": entry}}, indent=2))
    return root


def yamnet_weights() -> np.ndarray:
    """Per-class gains of the YAMNet-like graph: class c scores c/520 x frame loudness."""
    return (np.arange(521, dtype=np.float32) / 520.0).reshape(1, 521)


def build_yamnet_like(path: Path, *, batched: bool, frames: int = 3) -> Path:
    """waveform [samples] -> [frames, 521] (TF-Hub YAMNet layout) or [N, samples] -> [N, frames, 521].

    Each frame's score for class c is mean(|frame|) * c / 520, so tests can predict every output.
    """
    shape_in = ["N", WINDOW] if batched else [WINDOW]
    split = np.array([-1, frames, WINDOW // frames] if batched else [frames, WINDOW // frames], np.int64)
    nodes = [
        helper.make_node("Reshape", ["waveform", "split"], ["framed"]),
        helper.make_node("Abs", ["framed"], ["mag"]),
        helper.make_node("ReduceMean", ["mag"], ["loud"], axes=[-1], keepdims=1),
        helper.make_node("MatMul", ["loud", "gains"], ["scores"]),
        helper.make_node("Identity", ["loud"], ["embeddings"]),  # a decoy second output
    ]
    out_shape = ["N", frames, 521] if batched else [frames, 521]
    graph = helper.make_graph(
        nodes, "yamnet_like",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, shape_in)],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, out_shape[:-1] + [1]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(split, "split"),
                     numpy_helper.from_array(yamnet_weights(), "gains")])
    return _save(graph, path)


def write_class_map(path: Path, names_to_index: dict[str, int]) -> Path:
    """A yamnet_class_map.csv-style file (``index,mid,display_name``, names quoted as needed)."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["index", "mid", "display_name"])
        for name, index in sorted(names_to_index.items(), key=lambda kv: kv[1]):
            writer.writerow([index, f"/m/test{index}", name])
    return Path(path)


class FileMic:
    """A microphone stand-in: plays a real encoded file through ``MicSource``'s interface (start/read/stop/
    start_wall), at ``speed`` times real time when ``realtime`` (a device delivers blocks at its own pace)."""

    def __init__(self, path, *, realtime: bool, speed: float = 1.0) -> None:
        self.path, self.realtime, self.speed = path, realtime, speed
        self.start_wall: float | None = None
        self.ended = False
        self.on_block: Callable[[AudioBlock], None] | None = None  # the test acting while the device plays

    def start(self) -> None:
        self.blocks = iter(AudioFileSource(self.path, block_samples=1600))
        self.start_wall = time.time()

    def read(self, timeout=None):
        try:
            block = next(self.blocks)
        except StopIteration:
            self.ended = True
            return None
        if self.realtime:
            time.sleep(max(0.0, self.start_wall + block.time / self.speed - time.time()))
        if self.on_block is not None:
            self.on_block(block)
        return block

    def stop(self) -> None:
        pass
