"""The motion ONNX graph (models/build_motion.py) and model verification (edge_media.model_files)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edge_media.model_files import (
    ModelIntegrityError,
    file_sha256,
    load_model_entry,
    models_dir,
    verify_file,
)

REPO = Path(__file__).resolve().parents[1]


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_motion", REPO / "models" / "build_motion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_motion = _load_builder()


@pytest.fixture(scope="module")
def session() -> ort.InferenceSession:
    return ort.InferenceSession(str(load_model_entry("motion").path),
                                providers=["CPUExecutionProvider"])


def _feeds(frames: np.ndarray, background: np.ndarray, mask: np.ndarray,
           threshold: float, alpha: float) -> dict[str, np.ndarray]:
    n = frames.shape[0]
    return {
        "frames": frames, "background": background, "mask": mask,
        "threshold": np.full((n, 1, 1, 1), threshold, np.float32),
        "alpha": np.full((n, 1, 1, 1), alpha, np.float32),
    }


def test_build_is_deterministic_and_matches_shipped_model(tmp_path: Path) -> None:
    sha_a = build_motion.build(tmp_path / "a")
    sha_b = build_motion.build(tmp_path / "b")
    assert sha_a == sha_b == file_sha256(tmp_path / "a" / "motion.onnx")
    # The committed binary must be exactly what the script builds.
    assert load_model_entry("motion", REPO / "models").sha256 == sha_a


def test_build_keeps_other_manifest_entries(tmp_path: Path) -> None:
    audio = {"file": "audio.onnx", "version": "0.1.0", "sha256": "00", "kind": "audio"}
    (tmp_path / "manifest.json").write_text(json.dumps({"models": {"audio": audio}}))
    sha = build_motion.build(tmp_path)
    models = json.loads((tmp_path / "manifest.json").read_text())["models"]
    assert models["audio"] == audio
    entry = models["motion"]
    assert entry["sha256"] == sha and entry["opset"] == 17 and entry["cell"] == 16
    assert entry["inputs"]["frames"] == {"dtype": "uint8", "shape": ["N", 1, "H", "W"]}


def test_output_shapes_and_dtypes(session: ort.InferenceSession) -> None:
    n, h, w = 3, 180, 320
    rng = np.random.default_rng(1)
    feeds = _feeds(rng.integers(0, 256, (n, 1, h, w), dtype=np.uint8),
                   np.zeros((n, 1, h, w), np.float32), np.ones((n, 1, h, w), np.float32), 25, 0.1)
    bg, grid, changed = session.run(["new_background", "grid", "changed"], feeds)
    assert bg.shape == (n, 1, h, w) and bg.dtype == np.float32
    assert grid.shape == (n, 1, 12, 20) and grid.dtype == np.float32  # ceil(180/16) = 12
    assert changed.shape == (n,) and changed.dtype == np.float32


def test_grid_and_changed_on_known_rectangle(session: ort.InferenceSession) -> None:
    """A flat frame at the target mean is its own normalised background; a bright rectangle is the
    only change. Threshold 45 keeps the 2-px blur fringe out, so the changed set is exactly the
    rectangle grown by the 3x3 dilation; the right half is masked out."""
    h, w = 180, 320
    flat = np.full((h, w), 110, np.uint8)  # 110 = TARGET_MEAN → gain 1
    moved = flat.copy()
    moved[32:64, 48:96] = 250
    moved[100:140, 200:300] = 250  # inside the ignored half: must not count
    frames = np.stack([flat, moved])[:, None]
    background = np.full((2, 1, h, w), build_motion.TARGET_MEAN, np.float32)
    mask = np.ones((2, 1, h, w), np.float32)
    mask[..., w // 2:] = 0
    bg, grid, changed = session.run(
        ["new_background", "grid", "changed"], _feeds(frames, background, mask, 45.0, 0.0))
    expected = (32 + 2) * (48 + 2) / (h * w / 2)
    assert changed[0] == 0.0
    assert changed[1] == pytest.approx(expected, rel=1e-5)
    assert np.all(grid[1, 0, 2:4, 3:6] == 1.0)  # cells wholly inside the rectangle
    assert grid[1, 0, 1, 3] == pytest.approx(16 / 256)  # the dilated row 31 only
    assert grid[1, 0].sum() * 256 == pytest.approx(34 * 50)
    assert np.all(grid[1, 0, :, 10:] == 0.0)  # masked half
    np.testing.assert_array_equal(bg, background)  # alpha 0: background unchanged


def test_background_update_and_edge_cells(session: ort.InferenceSession) -> None:
    h, w = 37, 53  # not multiples of the cell: ceil_mode must cover the edge
    frames = np.full((1, 1, h, w), 55, np.uint8)  # mean 55 = MIN_MEAN → gain 2 → 110
    background = np.zeros((1, 1, h, w), np.float32)
    mask = np.ones((1, 1, h, w), np.float32)
    bg, grid, changed = session.run(
        ["new_background", "grid", "changed"], _feeds(frames, background, mask, np.inf, 1.0))
    np.testing.assert_allclose(bg, 110.0, rtol=1e-6)  # alpha 1 copies the normalised frame
    assert grid.shape == (1, 1, 3, 4) and changed[0] == 0.0
    _, grid, changed = session.run(
        ["new_background", "grid", "changed"], _feeds(frames, background, mask, 25.0, 0.5))
    assert changed[0] == 1.0 and np.all(grid == 1.0)  # edge cells average their in-frame pixels


def test_verify_file_and_integrity_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "models"
    shutil.copytree(models_dir(), copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setenv("EDGE_MEDIA_MODELS_DIR", str(copy))
    assert models_dir() == copy
    entry = load_model_entry("motion")
    verify_file(entry.path, entry.sha256)

    data = bytearray(entry.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=entry.sha256) as err:
        load_model_entry("motion")
    assert "motion.onnx" in str(err.value) and file_sha256(entry.path) in str(err.value)

    from edge_media.detect import MotionDetector
    with pytest.raises(ModelIntegrityError):
        MotionDetector()
    with pytest.raises(ModelIntegrityError, match="no entry"):
        load_model_entry("no-such-model")
    entry.path.unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        load_model_entry("motion")
