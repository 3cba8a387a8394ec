"""The audio-event model at run time: onnxruntime on one thread, scores per product label.

Two kinds of model give the same interface (``predict`` -> [N, len(labels)] in ``labels`` order):
- ours, from the manifest entry ``audio_events`` (sha256 verified before loading; raw 16 kHz
  waveform windows in, one score per manifest label out, feature extraction inside the graph);
- a YAMNet-style model (waveform in, per-frame scores over the 521 AudioSet classes out) with a
  class-map CSV, mapped onto product labels by :mod:`.labels` (max over member classes and frames).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_media.model_files import (
    ModelFile,
    ModelIntegrityError,
    inference_session,
    load_model_entry,
    model_file_for_path,
)

from .labels import (
    AUDIOSET_CLASS_INDEX,
    AUDIOSET_NUM_CLASSES,
    AUDIOSET_TO_EVENTS,
    NON_EVENT_LABELS,
    member_indices,
    read_class_map,
)

MANIFEST_NAME = "audio_events"
YAMNET_WINDOW_SAMPLES = 15600  # 0.975 s: YAMNet's patch, and our model's window
DEFAULT_YAMNET_THRESHOLD = 0.3  # a starting point for AudioSet sigmoid scores; tune per deployment
# Manifest "activation" names the graph's final layer. Probabilities pass through; raw logits
# get a sigmoid here so that thresholds always mean the same 0..1 scale.
_PROBABILITIES = {"sigmoid", "softmax"}
_LOGITS = {"none", "linear", "logits"}


@dataclass(frozen=True)
class AudioModelInfo:
    name: str
    version: str
    sha256: str
    path: Path
    labels: tuple[str, ...]  # columns of predict(), product labels only
    thresholds: Mapping[str, float] = field(hash=False)  # default per-label thresholds
    sample_rate: int = 16000
    window_samples: int = 15600
    kind: str = "manifest"  # "manifest" (ours) or "yamnet"
    # default per-label minimum durations (seconds heard before an event starts); missing labels use
    # the config's default
    min_duration_s: Mapping[str, float] = field(default_factory=dict, hash=False)


class AudioEventModel:
    """Scores windows of raw 16 kHz mono float32; build with :meth:`from_manifest` or
    :meth:`from_yamnet`."""

    def __init__(self, session: ort.InferenceSession, info: AudioModelInfo, *, input_name: str,
                 output_name: str, columns: Sequence[Sequence[int]], sigmoid: bool = False,
                 per_window_calls: bool = False) -> None:
        self._session, self.info = session, info
        self._input, self._output = input_name, output_name
        self._columns = [np.asarray(c, np.intp) for c in columns]  # member outputs per label
        self._single = all(len(c) == 1 for c in self._columns)
        self._sigmoid, self._per_window = sigmoid, per_window_calls
        self.inference_calls = 0

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    @property
    def version(self) -> str:
        return self.info.version

    @classmethod
    def from_manifest(cls, name: str = MANIFEST_NAME, directory: Path | None = None, *,
                      threads: int = 1) -> AudioEventModel:
        """Our model from the manifest; raises ModelIntegrityError on a missing/tampered file."""
        mf = load_model_entry(name, directory)
        entry = mf.entry
        try:
            outputs = [str(x) for x in entry["labels"]]
            input_name, output_name = entry["input"], entry["output"]
            rate, window = int(entry["sample_rate"]), int(entry["window_samples"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelIntegrityError(f"manifest entry {name!r} lacks or mangles field {exc}") from exc
        product = [str(x) for x in entry.get("product_labels")
                   or [x for x in outputs if x not in NON_EVENT_LABELS]]
        unknown = [x for x in product if x not in outputs]
        if unknown:
            raise ModelIntegrityError(f"manifest entry {name!r}: product labels {unknown} not in labels")
        activation = str(entry.get("activation", "sigmoid")).lower()
        if activation not in _PROBABILITIES | _LOGITS:
            raise ModelIntegrityError(f"manifest entry {name!r}: unknown activation {activation!r}")
        session = inference_session(mf.path, threads)
        _check_io(session, mf, input_name, output_name, len(outputs))
        try:
            thresholds = {k: float(v) for k, v in dict(entry.get("thresholds") or {}).items() if k in product}
            durations = {k: float(v) for k, v in dict(entry.get("min_duration_s") or {}).items() if k in product}
        except (TypeError, ValueError) as exc:
            raise ModelIntegrityError(f"manifest entry {name!r}: bad thresholds / min_duration_s ({exc})") from exc
        info = AudioModelInfo(name, mf.version, mf.sha256, mf.path, tuple(product), thresholds, rate,
                              window, "manifest", durations)
        return cls(session, info, input_name=input_name, output_name=output_name,
                   columns=[[outputs.index(x)] for x in product], sigmoid=activation in _LOGITS)

    @classmethod
    def from_yamnet(cls, path: Path | str, *, class_map: Path | str | None = None,
                    label_map: Mapping[str, Sequence[str]] = AUDIOSET_TO_EVENTS,
                    thresholds: Mapping[str, float] | None = None,
                    window_samples: int = YAMNET_WINDOW_SAMPLES, input_name: str | None = None,
                    output_name: str | None = None, threads: int = 1) -> AudioEventModel:
        """A YAMNet-style ONNX: waveform [N, samples] or [samples] -> scores [..., 521]."""
        mf: ModelFile = model_file_for_path(Path(path))  # verified if a manifest lists it
        class_index = read_class_map(class_map) if class_map is not None else AUDIOSET_CLASS_INDEX
        session = inference_session(mf.path, threads)
        inp = _pick(session.get_inputs(), input_name, "input", mf.path)
        out = _pick(session.get_outputs(), output_name or _scores_output(session), "output", mf.path)
        if len(inp.shape) not in (1, 2):
            raise ModelIntegrityError(f"{mf.path}: input {inp.name!r} must be [samples] or [N, samples], "
                                      f"got {inp.shape}")
        num_classes = out.shape[-1] if isinstance(out.shape[-1], int) else AUDIOSET_NUM_CLASSES
        members = member_indices(label_map, class_index, num_classes)
        labels = tuple(members)
        limits = {x: float((thresholds or {}).get(x, DEFAULT_YAMNET_THRESHOLD)) for x in labels}
        info = AudioModelInfo(mf.name, mf.version, mf.sha256, mf.path, labels, limits, 16000,
                              window_samples, "yamnet")
        return cls(session, info, input_name=inp.name, output_name=out.name,
                   columns=[members[x] for x in labels], per_window_calls=len(inp.shape) == 1)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Scores [N, len(labels)] for ``windows`` [N, window_samples] (one onnxruntime call per
        batch; a model with a 1-D input, like the TF-Hub YAMNet export, needs one per window)."""
        batch = np.ascontiguousarray(windows, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != self.info.window_samples:
            raise ValueError(f"expected windows [N, {self.info.window_samples}], got {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if self._per_window:
            raw = np.stack([_frames_max(self._run(w)) for w in batch])
        else:
            raw = self._run(batch)
            if raw.ndim == 2 and len(raw) != len(batch):
                raise ModelIntegrityError(f"{self.info.path}: {len(batch)} windows gave {len(raw)} rows")
            raw = raw.reshape(len(batch), -1, raw.shape[-1]).max(axis=1)  # max over frames, if any
        if self._sigmoid:
            raw = 1.0 / (1.0 + np.exp(-raw))
        return self._map(raw)

    def _run(self, x: np.ndarray) -> np.ndarray:
        self.inference_calls += 1
        return np.asarray(self._session.run([self._output], {self._input: x})[0], np.float32)

    def _map(self, raw: np.ndarray) -> np.ndarray:
        if self._single:  # our model: plain column selection
            return raw[:, np.concatenate(self._columns)].astype(np.float32, copy=False)
        out = np.zeros((len(raw), len(self._columns)), np.float32)
        for j, cols in enumerate(self._columns):  # per label per batch, not per window
            if len(cols):
                out[:, j] = raw[:, cols].max(axis=1)
        return out


def _frames_max(scores: np.ndarray) -> np.ndarray:
    """[frames, C] or [C] -> [C]: an event anywhere in the window counts."""
    return scores.reshape(-1, scores.shape[-1]).max(axis=0)


def _check_io(session: ort.InferenceSession, mf: ModelFile, input_name: str, output_name: str,
              num_outputs: int) -> None:
    """The graph must match its manifest entry: a mismatch means a broken rollout."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if input_name not in inputs or output_name not in outputs:
        raise ModelIntegrityError(f"{mf.path}: expected input {input_name!r} and output {output_name!r}, "
                                  f"graph has {sorted(inputs)} -> {sorted(outputs)}")
    last = outputs[output_name].shape[-1]
    if isinstance(last, int) and last != num_outputs:
        raise ModelIntegrityError(f"{mf.path}: output {output_name!r} has {last} scores, manifest "
                                  f"lists {num_outputs} labels")


def _scores_output(session: ort.InferenceSession) -> str:
    """YAMNet exports return (scores, embeddings, spectrogram): pick the one with 521 classes."""
    for out in session.get_outputs():
        if out.shape and out.shape[-1] == AUDIOSET_NUM_CLASSES:
            return out.name
    return session.get_outputs()[0].name


def _pick(items: Sequence[ort.NodeArg], name: str | None, what: str, path: Path) -> ort.NodeArg:
    if name is None:
        return items[0]
    for item in items:
        if item.name == name:
            return item
    raise ModelIntegrityError(f"{path}: no {what} named {name!r} (has {[i.name for i in items]})")
