"""Motion detection: the stateless ONNX motion graph plus per-camera background state in Python.

One onnxruntime call serves every camera whose detect frames share a shape, so the cost per frame
falls as cameras are added. The graph normalises each frame's brightness and contrast, so
auto-exposure and most global lighting changes cancel before the comparison; the rest (lights
switching on in part of the room, IR cut filter) is caught by recalibration here.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_media.model_files import (
    ModelFile,
    inference_session,
    load_model_entry,
    model_file_for_path,
)

CALIBRATION_S = 1.0  # after (re)start the background settles for this long: no motion reported
BACKGROUND_TAU_S = 10.0  # time constant of the running background: a parked car fades in ~10-30 s
CALIBRATION_TAU_S = 0.25  # fast learning while calibrating so auto-exposure settling is absorbed
RECALIBRATE_FRACTION = 0.4  # more than this of the watched area changed at once → lighting, not motion
MAX_GAP_S = 10.0  # a longer hole in stream time means the stored background may be stale
_NEVER = float("inf")  # a diff threshold nothing exceeds


@dataclass(frozen=True)
class MotionSettings:
    sensitivity: float = 0.5  # 0..1; maps to diff threshold and min changed area
    # Areas to IGNORE, as polygons of normalised 0..1 (x, y) points.
    mask_polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    fps: float = 5.0  # detect fps: turns the background time constant (seconds) into alpha

    def __post_init__(self) -> None:
        if not 0.0 <= self.sensitivity <= 1.0:
            raise ValueError(f"sensitivity must be within 0..1, got {self.sensitivity}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")

    @property
    def diff_threshold(self) -> float:
        """Per-pixel threshold in normalised luma units (each frame is scaled to mean 110).

        25 at the default is ~6x the residual sensor noise after the blur, yet below the contrast of
        a person against a typical indoor or outdoor background."""
        return 40.0 - 30.0 * self.sensitivity

    @property
    def min_area(self) -> float:
        """Changed fraction of the watched area needed for motion: 0.55 % at the default, well
        below a person at 1-3 % of the frame, well above scattered compression speckle."""
        return 0.01 - 0.009 * self.sensitivity

    @property
    def cell_threshold(self) -> float:
        """At least one 16x16 cell must be this full: a compact object, not noise spread thin."""
        return 0.5 - 0.4 * self.sensitivity

    def alpha(self, tau_s: float) -> float:
        """Learning rate whose exponential time constant is ``tau_s`` seconds at ``fps``."""
        return 1.0 - math.exp(-1.0 / (self.fps * tau_s))


@dataclass(slots=True)
class MotionResult:
    camera: str
    time: float
    motion: bool
    score: float  # changed fraction of the watched area
    grid: np.ndarray  # GHxGW cell fractions
    calibrating: bool


@dataclass(slots=True)
class _CameraState:
    shape: tuple[int, int]
    settings: MotionSettings
    mask: np.ndarray  # float32 [1,1,H,W], 1 = watch
    background: np.ndarray | None = None  # float32 [1,1,H,W] in the graph's normalised space
    calibrating_until: float = -math.inf
    last_time: float | None = None
    params: dict[str, float] = field(default_factory=dict)


def rasterise_mask(shape: tuple[int, int], polygons: Sequence[Sequence[tuple[float, float]]]
                   ) -> np.ndarray:
    """Watch mask float32 [1,1,H,W]: 1 everywhere except inside the (normalised) ignore polygons."""
    h, w = shape
    watch = np.ones((h, w), np.uint8)
    if polygons:
        pts = []
        for poly in polygons:
            arr = np.asarray(poly, np.float64).reshape(-1, 2)
            if len(arr) < 3:
                raise ValueError(f"a mask polygon needs at least 3 points, got {len(arr)}")
            pts.append(np.round(arr * (w, h)).astype(np.int32))
        cv2.fillPoly(watch, pts, 0)
    return watch.astype(np.float32).reshape(1, 1, h, w)


class MotionDetector:
    """Batched motion detection over many cameras with one shared onnxruntime session."""

    def __init__(self, model: Path | None = None, *, threads: int = 1) -> None:
        info: ModelFile = load_model_entry("motion") if model is None else model_file_for_path(model)
        self.model_version: str = info.version
        self.model_sha256: str = info.sha256
        self._session = inference_session(info.path, threads)
        self._cameras: dict[str, _CameraState] = {}
        self.inference_calls = 0  # onnxruntime runs so far (one per frame shape per detect())

    def add_camera(self, camera: str, shape: tuple[int, int], settings: MotionSettings) -> None:
        """Register (or re-register) ``camera`` whose gray detect frames are ``shape`` = (h, w)."""
        h, w = int(shape[0]), int(shape[1])
        self._cameras[camera] = _CameraState(
            shape=(h, w), settings=settings, mask=rasterise_mask((h, w), settings.mask_polygons),
            params={"threshold": settings.diff_threshold, "alpha": settings.alpha(BACKGROUND_TAU_S),
                    "alpha_calibrating": settings.alpha(CALIBRATION_TAU_S)},
        )

    def remove_camera(self, camera: str) -> None:
        self._cameras.pop(camera, None)

    def reset(self, camera: str) -> None:
        """Forget the background: the next frame starts a new calibration (reconnect, seek)."""
        state = self._state(camera)
        state.background = None
        state.last_time = None

    def is_calibrating(self, camera: str) -> bool:
        state = self._state(camera)
        return state.background is None or (
            state.last_time is not None and state.last_time < state.calibrating_until)

    def detect(self, batch: Sequence[tuple[str, float, np.ndarray]]) -> list[MotionResult]:
        """Detect motion in ``(camera, stream time, HxW uint8 gray)`` items; results in input order.

        Frames of all cameras sharing a shape go through one onnxruntime call. A camera listed twice
        is processed in order, its second frame in a following call, since it needs the first's
        background."""
        results: list[MotionResult | None] = [None] * len(batch)
        for round_items in _rounds(batch):
            by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
            for i in round_items:
                by_shape[self._check_item(batch[i])].append(i)
            for indices in by_shape.values():
                for i, res in zip(indices, self._run([batch[i] for i in indices])):
                    results[i] = res
        return results  # type: ignore[return-value]

    # -- internals -------------------------------------------------------------------------------

    def _state(self, camera: str) -> _CameraState:
        try:
            return self._cameras[camera]
        except KeyError:
            raise KeyError(f"camera {camera!r} was not added to the motion detector") from None

    def _check_item(self, item: tuple[str, float, np.ndarray]) -> tuple[int, int]:
        camera, _, frame = item
        state = self._state(camera)
        if frame.dtype != np.uint8 or frame.shape != state.shape:
            raise ValueError(f"camera {camera!r}: expected uint8 frame of shape {state.shape}, "
                             f"got {frame.dtype} {frame.shape}")
        return state.shape

    def _prepare(self, camera: str, time: float) -> tuple[_CameraState, float, float]:
        """Advance ``camera``'s clock; returns (state, threshold, alpha) for this frame."""
        state = self._cameras[camera]
        last = state.last_time
        if last is not None and (time < last or time - last > MAX_GAP_S):
            state.background = None  # stream restarted, looped or stalled: old background is stale
        state.last_time = time
        # While calibrating nothing counts as changed (infinite threshold), so every pixel learns
        # at the full rate instead of the graph's slowed rate for motion pixels.
        if state.background is None:
            state.calibrating_until = time + CALIBRATION_S
            return state, _NEVER, 1.0  # alpha 1 copies the normalised frame into the background
        if time < state.calibrating_until:
            return state, _NEVER, state.params["alpha_calibrating"]
        return state, state.params["threshold"], state.params["alpha"]

    def _run(self, items: list[tuple[str, float, np.ndarray]]) -> list[MotionResult]:
        prepared = [self._prepare(cam, t) for cam, t, _ in items]
        h, w = prepared[0][0].shape
        placeholder = np.zeros((1, 1, h, w), np.float32)  # first frame: overwritten via alpha 1
        feeds = {
            "frames": np.stack([f for _, _, f in items])[:, None],
            "background": np.concatenate(
                [placeholder if s.background is None else s.background for s, _, _ in prepared]),
            "mask": np.concatenate([s.mask for s, _, _ in prepared]),
            "threshold": np.array([thr for _, thr, _ in prepared], np.float32).reshape(-1, 1, 1, 1),
            "alpha": np.array([a for _, _, a in prepared], np.float32).reshape(-1, 1, 1, 1),
        }
        new_bg, grid, changed = self._session.run(["new_background", "grid", "changed"], feeds)
        self.inference_calls += 1
        out = []
        for k, ((cam, t, _), (state, _, _)) in enumerate(zip(items, prepared)):
            state.background = new_bg[k : k + 1].copy()  # own copy: keeps the batch array freeable
            out.append(self._decide(cam, t, state, grid[k, 0], float(changed[k])))
        return out

    def _decide(self, camera: str, time: float, state: _CameraState, grid: np.ndarray,
                changed: float) -> MotionResult:
        if time < state.calibrating_until:
            return MotionResult(camera, time, False, changed, grid, True)
        if changed > RECALIBRATE_FRACTION:
            # Most of the view changed at once: lights, IR switch or a camera bump. Start over from
            # the next frame instead of reporting a whole-frame "motion" for the next minute.
            state.background = None
            return MotionResult(camera, time, False, changed, grid, True)
        s = state.settings
        motion = changed >= s.min_area and float(grid.max(initial=0.0)) >= s.cell_threshold
        return MotionResult(camera, time, motion, changed, grid, False)


def _rounds(batch: Sequence[tuple[str, float, np.ndarray]]) -> list[list[int]]:
    """Split batch indices so each camera occurs at most once per round, keeping per-camera order."""
    rounds: list[list[int]] = []
    seen: dict[str, int] = defaultdict(int)
    for i, (camera, _, _) in enumerate(batch):
        r = seen[camera]
        seen[camera] += 1
        if r == len(rounds):
            rounds.append([])
        rounds[r].append(i)
    return rounds
