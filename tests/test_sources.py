"""Video source over PyAV on real encoded media: sampling, gray frames, reconnect, corrupt input."""

from __future__ import annotations

import http.server
import logging
import socket
import threading
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from edge_media.sources import (
    Backoff,
    Connected,
    DetectFrame,
    Disconnected,
    SourceError,
    SourceSpec,
    VideoSource,
    detect_size,
)
from recorder.packets import MediaPacket

from media import MovingBox, VideoSpec, make_video


@pytest.fixture(scope="module")
def av_file(tmp_path_factory) -> Path:
    spec = VideoSpec(width=640, height=360, fps=15, duration_s=4.0, audio=True, boxes=[MovingBox(1, 3)])
    return make_video(tmp_path_factory.mktemp("src") / "cam.mp4", spec)


@pytest.fixture(scope="module")
def ts_file(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("src") / "cam.ts", VideoSpec(duration_s=3.0, boxes=[MovingBox(1, 2)]))


def test_detect_size_keeps_aspect_and_never_upscales():
    assert detect_size(1280, 720, 320) == (320, 180)
    assert detect_size(640, 480, 320) == (320, 240)
    assert detect_size(160, 120, 320) == (160, 120)


def test_file_source_yields_packets_and_sampled_gray_frames(av_file):
    src = VideoSource(SourceSpec(str(av_file), detect_width=320, detect_fps=5))
    events = list(src)
    kinds = Counter(type(e).__name__ for e in events)
    assert isinstance(events[0], Connected) and isinstance(events[-1], Disconnected)
    frames = [e for e in events if isinstance(e, DetectFrame)]
    assert len(frames) == pytest.approx(20, abs=1)  # 4 s at 5 fps
    assert all(f.image.shape == (180, 320) and f.image.dtype == np.uint8 for f in frames)
    steps = np.diff([f.time for f in frames])
    assert np.allclose(steps, 0.2, atol=0.07)
    packets = [e for e in events if isinstance(e, MediaPacket)]
    assert any(not p.is_video for p in packets), "audio packets of the same source are kept"
    assert sum(p.is_keyframe for p in packets) == 2  # gop 30 @ 15 fps over 4 s
    assert src.stats.frames_decoded == 60 and kinds["MediaPacket"] == len(packets)
    # the gray frame is the real luma, scaled: the moving box (value 230) is visible at 2 s
    bright = [f for f in frames if 1.5 < f.time < 2.5]
    assert all((f.image > 220).mean() > 0.01 for f in bright)


def test_record_only_source_does_not_decode(av_file):
    src = VideoSource(SourceSpec(str(av_file), detect_width=None))
    events = list(src)
    assert not any(isinstance(e, DetectFrame) for e in events)
    assert src.stats.frames_decoded == 0 and src.stats.packets > 60


def test_missing_or_garbage_file_raises_clean_source_error(tmp_path):
    with pytest.raises(SourceError, match="cannot open"):
        list(VideoSource(SourceSpec(str(tmp_path / "nope.mp4"))))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError, match="cannot open"):
        list(VideoSource(SourceSpec(str(junk))))


def test_truncated_stream_ends_cleanly(ts_file, tmp_path):
    data = ts_file.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) // 2])
    src = VideoSource(SourceSpec(str(cut)))
    events = list(src)
    assert isinstance(events[-1], Disconnected)
    assert 0 < src.stats.frames_decoded < 45


def test_mid_stream_corruption_is_reported_and_skipped(ts_file, tmp_path, caplog):
    data = bytearray(ts_file.read_bytes())
    rng = np.random.default_rng(7)
    # Damage payload bytes (not the 4-byte TS headers) over a stretch in the middle.
    for pkt_start in range(len(data) // 3 // 188 * 188, len(data) // 2, 188 * 3):
        data[pkt_start + 20 : pkt_start + 120] = rng.integers(0, 256, 100, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.ts"
    bad.write_bytes(bytes(data))
    caplog.set_level(logging.WARNING)
    src = VideoSource(SourceSpec(str(bad), detect_fps=15))
    frames = [e for e in src if isinstance(e, DetectFrame)]
    times = [f.time for f in frames]
    assert len(frames) > 30 and max(times) > 2.5, "decoding went on after the damage"
    assert max(times) < 4.0, "corrupt timestamps do not throw stream time hours ahead"
    warnings = [r for r in caplog.records if "corrupt" in r.getMessage()]
    assert src.stats.decode_errors == 0 or len(warnings) == 1


class _FileHandler(http.server.BaseHTTPRequestHandler):
    def __init__(self, payload: bytes, *args, **kwargs):
        self.payload = payload
        super().__init__(*args, **kwargs)

    def do_GET(self):  # noqa: N802 (http.server API)
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args):
        pass


class FlakyCamera:
    """An HTTP 'camera' on loopback that can be taken down and brought back on the same port."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cam.ts"

    def up(self) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), partial(_FileHandler, self.payload))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def test_live_source_reconnects_with_backoff_after_outage(ts_file, caplog):
    cam = FlakyCamera(ts_file.read_bytes())
    cam.up()
    caplog.set_level(logging.DEBUG, logger="edge_media.sources.video")
    stop = threading.Event()
    src = VideoSource(SourceSpec(cam.url, detect_fps=5, timeout_s=5), name="flaky", stop_event=stop,
                      backoff=Backoff(initial_s=0.05, cap_s=0.2))
    sessions, frame_times, restart = 0, [], None
    try:
        for ev in src:
            if isinstance(ev, Connected):
                sessions += 1
            elif isinstance(ev, DetectFrame):
                frame_times.append(ev.time)
                if sessions == 2 and len(frame_times) > 20:
                    stop.set()
            elif isinstance(ev, Disconnected) and sessions == 1:
                cam.down()  # the camera dies right after the first session's end
                restart = threading.Timer(1.0, cam.up)
                restart.start()
    finally:
        stop.set()
        if restart:
            restart.join()
        cam.down()
    assert sessions == 2
    assert src.stats.failures >= 3, "it kept trying while the camera was down"
    assert src.stats.failures < 40, "backoff: no busy loop"
    assert all(b > a for a, b in zip(frame_times, frame_times[1:])), "time is monotonic across sessions"
    msgs = [r.getMessage() for r in caplog.records if r.name == "edge_media.sources.video"]
    assert sum("reconnecting with backoff" in m for m in msgs) == 1, "one warning per outage"
    assert sum("reconnected after" in m for m in msgs) == 1


def test_backoff_grows_with_jitter_and_never_goes_below_floor():
    b = Backoff(initial_s=1.0, cap_s=8.0)
    delays = [b.next_delay() for _ in range(20)]
    assert min(delays) >= 1.0 and max(delays) <= 8.0
    assert len(set(round(d, 6) for d in delays)) > 10
    b.reset()
    assert b.next_delay() == 1.0


@pytest.mark.parametrize("size", [(1280, 720), (640, 360), (1920, 1080), (704, 576)])
def test_shrink_matches_area_average(size):
    import cv2

    from edge_media.sources.frames import shrink

    from media import background

    w, h = size
    rng = np.random.default_rng(3)
    exact = w % 320 == 0 and (w // 320) & (w // 320 - 1) == 0  # power-of-two factor: bit-exact box
    img = rng.integers(0, 256, (h, w + 64), dtype=np.uint8) if exact else np.pad(
        background(w, h, 3).astype(np.uint8), ((0, 0), (0, 64)))
    img = img[:, :w]  # a padded view, like a decoded plane with line_size > width
    tw, th = detect_size(w, h, 320)
    fast = shrink(img, tw, th).astype(int)
    ref = cv2.resize(np.ascontiguousarray(img), (tw, th), interpolation=cv2.INTER_AREA).astype(int)
    assert fast.shape == ref.shape
    assert np.abs(fast - ref).max() <= (1 if exact else 40)
    assert np.abs(fast - ref).mean() < (0.5 if exact else 2.0)
