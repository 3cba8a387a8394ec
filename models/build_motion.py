"""Build the motion ONNX graph (``models/motion.onnx``) and record it in ``models/manifest.json``.

Run: ``python models/build_motion.py [--out DIR]``. Needs the ``build`` extra (onnx) plus onnxruntime.

The graph is stateless: Python keeps the per-camera background and feeds it back as ``background``.
Everything is built from constants with ``onnx.helper`` so the same script always writes the same
bytes (the manifest sha256 is therefore reproducible from source).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MODEL_NAME = "motion"
VERSION = "1.0.0"
OPSET = 17
IR_VERSION = 8  # opset 17 needs IR 8; pinned so a newer onnx package does not change the bytes
CELL = 16  # grid cell size in pixels
TARGET_MEAN = 110.0  # every frame is scaled to this mean: a typical exposure keeps gain ≈ 1
MIN_MEAN = 55.0  # caps the gain at 2x so noise in dark scenes stays well below the threshold
MOTION_LEARN_RATE = 0.25  # background learning rate on motion pixels, relative to alpha

MODELS_DIR = Path(__file__).resolve().parent
FLOAT = TensorProto.FLOAT

INPUTS = {
    "frames": ("uint8", ["N", 1, "H", "W"]),
    "background": ("float32", ["N", 1, "H", "W"]),
    "mask": ("float32", ["N", 1, "H", "W"]),
    "threshold": ("float32", ["N", 1, 1, 1]),
    "alpha": ("float32", ["N", 1, 1, 1]),
}
OUTPUTS = {
    "new_background": ("float32", ["N", 1, "H", "W"]),
    "grid": ("float32", ["N", 1, "GH", "GW"]),
    "changed": ("float32", ["N"]),
}
_DTYPES = {"uint8": TensorProto.UINT8, "float32": FLOAT}


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name=name)


def _initializers() -> list[onnx.TensorProto]:
    return [
        _const("blur_pads", np.array([0, 0, 2, 2, 0, 0, 2, 2], np.int64)),
        _const("stat_axes", np.array([1, 2, 3], np.int64)),
        _const("one", np.array(1.0, np.float32)),
        _const("target_mean", np.array(TARGET_MEAN, np.float32)),
        _const("min_mean", np.array(MIN_MEAN, np.float32)),
        _const("motion_slowdown", np.array(1.0 - MOTION_LEARN_RATE, np.float32)),
        _const("flat", np.array([-1], np.int64)),
    ]


def _blur_nodes() -> list[onnx.NodeProto]:
    # Two 3x3 box filters = a separable [1,2,3,2,1]/9 kernel (close to a Gaussian, sigma ≈ 1.15).
    # AveragePool rather than Conv: onnxruntime runs a 1-channel Conv through its NCHWc layout,
    # which made the blur cost more than the whole rest of the graph. Edge padding (not zeros) so
    # the border does not darken and skew the frame statistics.
    return [
        helper.make_node("Cast", ["frames"], ["x"], to=FLOAT),
        helper.make_node("Pad", ["x", "blur_pads"], ["x_pad"], mode="edge"),
        helper.make_node("AveragePool", ["x_pad"], ["x_box"], kernel_shape=[3, 3]),
        helper.make_node("AveragePool", ["x_box"], ["blurred"], kernel_shape=[3, 3]),
    ]


def _normalise_nodes() -> list[onnx.NodeProto]:
    # Exposure and lighting changes are close to multiplicative, also after gamma ((k*x)^g =
    # k^g * x^g), so dividing by the frame mean cancels them. A mean/std normalisation would cancel
    # offsets too, but a bright person shifts a frame's std far more than its mean and then half
    # the scene "changes". Statistics use the watched area only: a flickering TV or a busy street
    # the user masked out must not move the normalisation of the area we compare.
    n = helper.make_node
    return [
        n("ReduceSum", ["mask", "stat_axes"], ["mask_sum"], keepdims=1),
        n("Max", ["mask_sum", "one"], ["mask_area"]),  # all-masked frame: avoid 0/0
        n("Mul", ["blurred", "mask"], ["b_masked"]),
        n("ReduceSum", ["b_masked", "stat_axes"], ["b_sum"], keepdims=1),
        n("Div", ["b_sum", "mask_area"], ["mean"]),
        # The floor caps the gain: a dark night scene must not turn sensor noise into motion.
        n("Max", ["mean", "min_mean"], ["mean_floor"]),
        n("Div", ["target_mean", "mean_floor"], ["gain"]),
        n("Mul", ["blurred", "gain"], ["normalised"]),
    ]


def _compare_nodes() -> list[onnx.NodeProto]:
    n = helper.make_node
    return [
        n("Sub", ["normalised", "background"], ["delta"]),
        n("Abs", ["delta"], ["abs_delta"]),
        n("Greater", ["abs_delta", "threshold"], ["hit_bool"]),
        n("Cast", ["hit_bool"], ["hit"], to=FLOAT),
        n("Mul", ["hit", "mask"], ["hit_masked"]),
        # Dilation joins the fragments of one object; re-masking keeps it out of ignored areas.
        n("MaxPool", ["hit_masked"], ["dilated"], kernel_shape=[3, 3], strides=[1, 1],
          pads=[1, 1, 1, 1]),
        n("Mul", ["dilated", "mask"], ["motion_px"]),
        # ceil_mode + count_include_pad=0: edge cells average over their in-frame pixels only.
        n("AveragePool", ["motion_px"], ["grid"], kernel_shape=[CELL, CELL],
          strides=[CELL, CELL], ceil_mode=1, count_include_pad=0),
        n("ReduceSum", ["motion_px", "stat_axes"], ["motion_sum"], keepdims=1),
        n("Div", ["motion_sum", "mask_area"], ["changed_4d"]),
        n("Reshape", ["changed_4d", "flat"], ["changed"]),
        # Running-average background in normalised space. Pixels that show motion learn 4x slower
        # so a passing person leaves no ghost trail, yet a parked car is still absorbed in the end.
        n("Mul", ["motion_px", "motion_slowdown"], ["slow"]),
        n("Sub", ["one", "slow"], ["px_rate"]),
        n("Mul", ["alpha", "px_rate"], ["px_alpha"]),
        n("Mul", ["px_alpha", "delta"], ["step"]),  # = alpha' * (normalised - background)
        n("Add", ["background", "step"], ["new_background"]),
    ]


def _value_infos(spec: dict[str, tuple[str, list]]) -> list[onnx.ValueInfoProto]:
    return [helper.make_tensor_value_info(k, _DTYPES[t], s) for k, (t, s) in spec.items()]


def build_model() -> onnx.ModelProto:
    """Return the checked motion graph (no I/O)."""
    graph = helper.make_graph(
        _blur_nodes() + _normalise_nodes() + _compare_nodes(),
        "edge_media_motion",
        _value_infos(INPUTS),
        _value_infos(OUTPUTS),
        initializer=_initializers(),
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="edge-media/models/build_motion.py",
        producer_version=VERSION,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def write_model(path: Path) -> str:
    """Serialise the graph to ``path``; returns its sha256 hex digest."""
    data = build_model().SerializeToString(deterministic=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def smoke_test(path: Path) -> None:
    """Run the written file once in onnxruntime with an odd frame size (exercises ceil_mode)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    n, h, w = 2, 37, 53
    rng = np.random.default_rng(0)
    feeds = {
        "frames": rng.integers(0, 255, (n, 1, h, w), dtype=np.uint8),
        "background": np.full((n, 1, h, w), TARGET_MEAN, np.float32),
        "mask": np.ones((n, 1, h, w), np.float32),
        "threshold": np.full((n, 1, 1, 1), 25.0, np.float32),
        "alpha": np.full((n, 1, 1, 1), 0.5, np.float32),
    }
    bg, grid, changed = sess.run(["new_background", "grid", "changed"], feeds)
    gh, gw = -(-h // CELL), -(-w // CELL)
    if bg.shape != (n, 1, h, w) or grid.shape != (n, 1, gh, gw) or changed.shape != (n,):
        raise RuntimeError(f"unexpected output shapes {bg.shape} {grid.shape} {changed.shape}")


def manifest_entry(sha256: str) -> dict:
    fmt = lambda spec: {k: {"dtype": t, "shape": s} for k, (t, s) in spec.items()}  # noqa: E731
    return {
        "file": f"{MODEL_NAME}.onnx", "version": VERSION, "sha256": sha256, "kind": "motion",
        "opset": OPSET, "inputs": fmt(INPUTS), "outputs": fmt(OUTPUTS), "cell": CELL,
        "normalisation": {"target_mean": TARGET_MEAN, "min_mean": MIN_MEAN},
        "motion_learn_rate": MOTION_LEARN_RATE,
    }


def update_manifest(manifest_path: Path, entry: dict) -> None:
    """Set the ``motion`` entry, keeping every other model (e.g. audio) as it is."""
    manifest_path = Path(manifest_path)
    doc = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    doc.setdefault("models", {})[MODEL_NAME] = entry
    manifest_path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def build(out_dir: Path = MODELS_DIR) -> str:
    """Write ``motion.onnx`` into ``out_dir``, smoke-test it, update the manifest; returns sha256."""
    out_dir = Path(out_dir)
    model_path = out_dir / f"{MODEL_NAME}.onnx"
    sha = write_model(model_path)
    smoke_test(model_path)
    update_manifest(out_dir / "manifest.json", manifest_entry(sha))
    return sha


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="directory to write into")
    args = parser.parse_args(argv)
    sha = build(args.out)
    print(f"wrote {args.out / (MODEL_NAME + '.onnx')} sha256={sha}")


if __name__ == "__main__":
    main()
