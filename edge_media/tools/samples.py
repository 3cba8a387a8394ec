"""Sample media with known content, encoded with PyAV (for the demo, tests and benchmarks).

``make_video`` draws a textured static scene (so the encoder has real detail to compress), with
optional moving objects, lighting flips and sensor noise, and encodes it with libx264 (and AAC when
``audio=True``). Every pixel operation is numpy over whole frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass
class MovingBox:
    start_s: float
    end_s: float
    size: tuple[int, int] = (0, 0)  # (w, h) in pixels; 0 → 1/6 of the frame
    value: int = 230  # luma of the object
    speed: float = 0.25  # fraction of frame width per second


@dataclass
class VideoSpec:
    width: int = 640
    height: int = 360
    fps: int = 15
    duration_s: float = 10.0
    gop: int = 30  # frames between keyframes
    boxes: list[MovingBox] = field(default_factory=list)
    light_flips: list[float] = field(default_factory=list)  # times at which lighting toggles
    light_gain: float = 1.6  # brightness factor while "lights on"
    noise_sigma: float = 0.0  # per-frame gaussian sensor noise (luma units)
    audio: bool = False
    audio_tone_hz: float = 440.0
    seed: int = 1234


def background(w: int, h: int, seed: int) -> np.ndarray:
    """A static scene with structure at several scales (walls, furniture, texture)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 70 + 30 * np.sin(xx / 37.0) * np.cos(yy / 23.0)
    for _ in range(12):
        x0, y0 = rng.integers(0, w - w // 6), rng.integers(0, h - h // 6)
        bw, bh = rng.integers(w // 20, w // 6), rng.integers(h // 20, h // 6)
        img[y0 : y0 + bh, x0 : x0 + bw] = rng.integers(40, 160)
    img += rng.normal(0, 4, size=img.shape)
    return np.clip(img, 0, 255).astype(np.float32)


def luma_frames(spec: VideoSpec):
    """Yield (index, time, luma float32 HxW) for every frame of the spec."""
    rng = np.random.default_rng(spec.seed + 1)
    base = background(spec.width, spec.height, spec.seed)
    n = int(round(spec.duration_s * spec.fps))
    for i in range(n):
        t = i / spec.fps
        img = base.copy()
        lit = sum(1 for f in spec.light_flips if f <= t) % 2 == 1
        if lit:
            img *= spec.light_gain
        for box in spec.boxes:
            if box.start_s <= t < box.end_s:
                bw = box.size[0] or spec.width // 6
                bh = box.size[1] or spec.height // 6
                travel = spec.width - bw
                x = int(((t - box.start_s) * box.speed * spec.width) % max(travel, 1))
                y = (spec.height - bh) // 2
                img[y : y + bh, x : x + bw] = box.value
        if spec.noise_sigma:
            img += rng.normal(0, spec.noise_sigma, size=img.shape).astype(np.float32)
        yield i, t, np.clip(img, 0, 255)


def make_video(path: Path, spec: VideoSpec) -> Path:
    """Encode ``spec`` to ``path`` (container from the suffix: .mp4, .mkv, .ts)."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=spec.fps)
        vs.width, vs.height, vs.pix_fmt = spec.width, spec.height, "yuv420p"
        vs.codec_context.gop_size = spec.gop
        vs.options = {"preset": "veryfast", "tune": "zerolatency", "bf": "0",
                      "keyint_min": str(spec.gop), "sc_threshold": "0"}
        vs.time_base = Fraction(1, spec.fps)
        astream = None
        if spec.audio:
            astream = out.add_stream("aac", rate=48000)
            astream.layout = "mono"
        chroma = np.full((spec.height // 2, spec.width // 2), 128, np.uint8)
        audio_pts = 0
        for i, t, luma in luma_frames(spec):
            y = luma.astype(np.uint8)
            yuv = np.concatenate([y, chroma.reshape(-1, spec.width), chroma.reshape(-1, spec.width)])
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, spec.fps)
            for pkt in vs.encode(frame):
                out.mux(pkt)
            if astream is not None:
                audio_pts = _encode_audio(out, astream, spec, t + 1 / spec.fps, audio_pts)
        for pkt in vs.encode(None):
            out.mux(pkt)
        if astream is not None:
            for pkt in astream.encode(None):
                out.mux(pkt)
    return path


def _encode_audio(out, astream, spec: VideoSpec, until_s: float, pts: int) -> int:
    """Encode a quiet tone up to ``until_s`` in 1024-sample frames; returns the next pts."""
    rate = 48000
    while pts + 1024 <= until_s * rate:
        n = np.arange(pts, pts + 1024)
        samples = (0.2 * np.sin(2 * np.pi * spec.audio_tone_hz * n / rate)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = pts
        frame.time_base = Fraction(1, rate)
        for pkt in astream.encode(frame):
            out.mux(pkt)
        pts += 1024
    return pts
