"""Locate shipped ONNX models and verify them against the manifest before anything loads them.

A model file is only handed out after its sha256 matches ``manifest.json``: a truncated download,
a half-finished rollout or a tampered file must fail loudly here, not as odd detections later.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort

from .errors import EdgeMediaError

MODELS_DIR_ENV = "EDGE_MEDIA_MODELS_DIR"
MANIFEST_NAME = "manifest.json"
_PACKAGE_DIR = Path(__file__).resolve().parent


class ModelIntegrityError(EdgeMediaError, RuntimeError):
    """A model file or manifest entry is missing, or the file's sha256 differs from the manifest."""


@dataclass(frozen=True)
class ModelFile:
    name: str
    path: Path
    version: str
    sha256: str
    entry: dict[str, Any] = field(compare=False, hash=False)


def models_dir() -> Path:
    """The models directory: $EDGE_MEDIA_MODELS_DIR, else the wheel's ``_models``, else repo ``models/``."""
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env)
    packaged = _PACKAGE_DIR / "_models"
    if packaged.is_dir():  # installed wheel (pyproject force-includes models/ here)
        return packaged
    return _PACKAGE_DIR.parent / "models"  # source checkout


def read_manifest(directory: Path | None = None) -> dict[str, Any]:
    """Parse ``manifest.json`` of ``directory`` (default: :func:`models_dir`)."""
    path = (directory or models_dir()) / MANIFEST_NAME
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelIntegrityError(f"model manifest {path} not found") from exc
    except json.JSONDecodeError as exc:
        raise ModelIntegrityError(f"model manifest {path} is not valid JSON: {exc}") from exc
    if not isinstance(doc.get("models"), dict):
        raise ModelIntegrityError(f"model manifest {path} has no 'models' object")
    return doc


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, sha256: str) -> None:
    """Raise :class:`ModelIntegrityError` unless ``path`` exists and hashes to ``sha256``."""
    path = Path(path)
    if not path.is_file():
        raise ModelIntegrityError(f"model file {path} is missing (expected sha256 {sha256})")
    actual = file_sha256(path)
    if actual != sha256.lower():
        raise ModelIntegrityError(
            f"model file {path} failed its integrity check: expected sha256 {sha256}, got {actual}"
        )


def load_model_entry(name: str, directory: Path | None = None) -> ModelFile:
    """Return the verified model ``name`` from the manifest in ``directory`` (default: models_dir())."""
    directory = Path(directory) if directory is not None else models_dir()
    entry = read_manifest(directory)["models"].get(name)
    if entry is None:
        raise ModelIntegrityError(f"model {name!r} has no entry in {directory / MANIFEST_NAME}")
    try:
        path, sha, version = directory / entry["file"], entry["sha256"], entry["version"]
    except KeyError as exc:
        raise ModelIntegrityError(f"manifest entry {name!r} lacks field {exc}") from exc
    verify_file(path, sha)
    return ModelFile(name=name, path=path, version=str(version), sha256=sha, entry=dict(entry))


def model_file_for_path(path: Path) -> ModelFile:
    """Describe an explicitly chosen model file (e.g. a rollout candidate).

    If a manifest beside it lists the file, that entry is verified and used; otherwise the file is
    accepted as an unversioned local model (the caller chose the path, so there is nothing to check
    it against) and its version says so.
    """
    path = Path(path)
    try:
        entries = read_manifest(path.parent)["models"]
    except ModelIntegrityError:
        entries = {}
    for name, entry in entries.items():
        if entry.get("file") == path.name:
            return load_model_entry(name, path.parent)
    if not path.is_file():
        raise ModelIntegrityError(f"model file {path} is missing")
    sha = file_sha256(path)
    return ModelFile(name=path.stem, path=path, version=f"unversioned-{sha[:12]}", sha256=sha,
                     entry={})


def inference_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU onnxruntime session with a fixed thread count: the hub runs many small models side by
    side, so each one is pinned rather than left to grab every core."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
