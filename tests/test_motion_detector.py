"""MotionDetector on real H.264 media: onset, noise, lighting, masks, batching."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from edge_media.detect import MotionDetector, MotionResult, MotionSettings

from media import MovingBox, VideoSpec, make_video

DETECT_FPS = 5.0
BOX_ONSET = 3.0
SHAPE = (180, 320)


def gray_frames(path: Path, fps: float = DETECT_FPS, width: int = 320
                ) -> Iterator[tuple[float, np.ndarray]]:
    """Decode ``path`` and yield (stream time, gray frame ``width`` wide) at about ``fps``."""
    next_t = 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.pts * frame.time_base)
            if t + 1e-6 < next_t:
                continue
            next_t += 1.0 / fps
            gray = frame.to_ndarray(format="gray")
            height = round(gray.shape[0] * width / gray.shape[1])
            yield t, cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)


DEFAULT_SETTINGS = MotionSettings()


def run_video(path: Path, settings: MotionSettings = DEFAULT_SETTINGS) -> list[MotionResult]:
    detector = MotionDetector()
    detector.add_camera("cam", SHAPE, settings)
    return [detector.detect([("cam", t, g)])[0] for t, g in gray_frames(path)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("motion_media")
    specs = {
        "box": VideoSpec(duration_s=5.0, boxes=[MovingBox(BOX_ONSET, 5.0)], noise_sigma=4.0),
        # ≈1 % of the frame, low contrast against the scene: a distant person in grey clothes.
        "small": VideoSpec(duration_s=5.0, noise_sigma=6.0,
                           boxes=[MovingBox(BOX_ONSET, 5.0, size=(48, 48), value=125)]),
        "noise": VideoSpec(duration_s=8.0, noise_sigma=8.0),
        "lights": VideoSpec(duration_s=8.0, light_flips=[3.0, 6.0], noise_sigma=2.0),
        "lights_off": VideoSpec(duration_s=8.0, light_flips=[3.0, 6.0], light_gain=0.4,
                                noise_sigma=8.0),
    }
    return {name: make_video(root / f"{name}.mp4", spec) for name, spec in specs.items()}


@pytest.mark.parametrize("name", ["box", "small"])
def test_motion_starts_at_box_onset(videos: dict[str, Path], name: str) -> None:
    results = run_video(videos[name])
    assert results[0].calibrating and not results[0].motion
    assert not any(r.motion for r in results if r.time < BOX_ONSET)
    first = next(r.time for r in results if r.motion)
    assert BOX_ONSET <= first <= BOX_ONSET + 0.3
    moving = [r for r in results if r.time >= BOX_ONSET]
    assert sum(r.motion for r in moving) >= len(moving) - 1  # stays on while the box moves
    assert all(r.grid.shape == (12, 20) for r in results)


def test_static_noisy_scene_has_no_motion(videos: dict[str, Path]) -> None:
    results = run_video(videos["noise"])
    assert not any(r.motion for r in results)
    assert max(r.score for r in results) < MotionSettings().min_area / 2


def test_lighting_flip_is_normalised_away(videos: dict[str, Path]) -> None:
    """A global gain change (×1.6) cancels in the graph's brightness normalisation."""
    results = run_video(videos["lights"])
    assert not any(r.motion for r in results)


def test_lights_off_recalibrates_instead_of_motion(videos: dict[str, Path]) -> None:
    """Dropping to 40 % light clamps the normalisation gain: the whole view changes, which must
    recalibrate (no motion), then settle again."""
    results = run_video(videos["lights_off"])
    assert not any(r.motion for r in results)
    recal = [r.time for r in results if r.calibrating and r.time > 1.5]
    assert recal and min(recal) == pytest.approx(3.0, abs=0.25)
    assert not results[-1].calibrating


def test_box_inside_ignore_polygon_is_not_motion(videos: dict[str, Path]) -> None:
    band = ((0.0, 0.3), (1.0, 0.3), (1.0, 0.7), (0.0, 0.7))  # the box's whole path
    results = run_video(videos["box"], MotionSettings(mask_polygons=(band,)))
    assert not any(r.motion for r in results)
    assert max(r.score for r in results) < MotionSettings().min_area / 2


def test_batch_equals_separate_calls_one_session_run_per_shape(videos: dict[str, Path]) -> None:
    box = list(gray_frames(videos["box"]))
    noise = list(gray_frames(videos["noise"]))[: len(box)]
    small = [(t, cv2.resize(g, (160, 90), interpolation=cv2.INTER_AREA)) for t, g in box]
    cams = {"a": box, "b": noise, "c": small}

    separate = MotionDetector()
    batched = MotionDetector()
    for det in (separate, batched):
        for cam, frames in cams.items():
            det.add_camera(cam, frames[0][1].shape, MotionSettings())

    for i in range(len(box)):
        items = [(cam, frames[i][0], frames[i][1]) for cam, frames in cams.items()]
        alone = [separate.detect([item])[0] for item in items]
        calls = batched.inference_calls
        together = batched.detect(items)
        assert batched.inference_calls - calls == 2  # 320x180 (a, b) and 160x90 (c)
        for x, y in zip(alone, together):
            assert (x.camera, x.time, x.motion, x.calibrating) == (y.camera, y.time, y.motion,
                                                                     y.calibrating)
            assert np.isclose(x.score, y.score) and np.allclose(x.grid, y.grid)
    assert any(r.motion for r in together if r.camera == "a")


def test_same_camera_twice_in_one_batch_is_processed_in_order(videos: dict[str, Path]) -> None:
    frames = list(gray_frames(videos["box"]))
    one = MotionDetector()
    one.add_camera("cam", SHAPE, MotionSettings())
    expected = [one.detect([("cam", t, g)])[0] for t, g in frames]
    two = MotionDetector()
    two.add_camera("cam", SHAPE, MotionSettings())
    got = []
    for k in range(0, len(frames), 2):
        got += two.detect([("cam", t, g) for t, g in frames[k : k + 2]])
    assert [r.time for r in got] == [r.time for r in expected]
    assert all(np.isclose(x.score, y.score) for x, y in zip(expected, got))


def test_reset_and_time_jump_recalibrate(videos: dict[str, Path]) -> None:
    frames = list(gray_frames(videos["noise"]))[:10]
    det = MotionDetector()
    det.add_camera("cam", SHAPE, MotionSettings())
    for t, g in frames:
        det.detect([("cam", t, g)])
    assert not det.is_calibrating("cam")
    det.reset("cam")
    assert det.detect([("cam", 9.0, frames[0][1])])[0].calibrating
    assert det.detect([("cam", 1.0, frames[1][1])])[0].calibrating  # stream time went back


def test_rejects_unknown_camera_and_wrong_shape() -> None:
    det = MotionDetector()
    det.add_camera("cam", SHAPE, MotionSettings())
    assert det.model_version == "1.0.0"
    with pytest.raises(KeyError):
        det.detect([("nope", 0.0, np.zeros(SHAPE, np.uint8))])
    with pytest.raises(ValueError):
        det.detect([("cam", 0.0, np.zeros((90, 160), np.uint8))])
    with pytest.raises(ValueError):
        MotionSettings(sensitivity=1.5)
