"""Video source over PyAV on real encoded media: sampling, gray frames, reconnect, corrupt input."""

from __future__ import annotations

import http.server
import logging
import socket
import threading
from collections import Counter
from functools import partial
from itertools import islice, pairwise
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

from media import MovingBox, VideoSpec, make_video, raw_h264, tiny_video


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

    def do_GET(self):
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


class CountingStop(threading.Event):
    """A stop event whose waits return at once and are recorded; it sets itself after ``limit`` waits.
    Lets a test count a source's backoff waits without sleeping through them."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.waits = limit, []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        if len(self.waits) >= self.limit:
            self.set()
        return self.is_set()


def test_looping_raw_h264_is_timed_from_its_frame_rate_and_reopened_only_after_backoff(ts_file, tmp_path, caplog):
    """Regression (issue 9, defect 9): a raw .h264 stream has no packet timestamps; every packet was
    dropped silently, so as a looping camera it reopened at once, forever, taking a whole core."""
    raw = raw_h264(ts_file, tmp_path / "cam.h264")
    caplog.set_level(logging.INFO, logger="edge_media.sources.video")
    stop = CountingStop(limit=4)
    src = VideoSource(SourceSpec(str(raw), loop=True, detect_fps=15), name="raw", stop_event=stop,
                      backoff=Backoff(initial_s=0.5, cap_s=4.0))
    events = list(islice(src, 2000))
    assert len(events) < 2000 and src.stats.sessions == 4, "every reopen waited its backoff"
    assert all(w >= 0.5 for w in stop.waits), "no wait below the backoff floor"
    packets = [e for e in events if isinstance(e, MediaPacket)]
    frames = [e for e in events if isinstance(e, DetectFrame)]
    assert len(packets) == 4 * 45 and src.stats.untimed_dropped == 0, "no packet is dropped"
    assert all(p.pts is not None and p.pts == p.dts for p in packets), "packets are stamped for the muxer"
    times = [p.time for p in packets]
    assert all(b > a for a, b in pairwise(times)), "time is monotonic within and across loops"
    assert times[44] == pytest.approx(44 / 15, abs=1e-6), "timed at the stream's 15 fps"
    assert len(frames) == 4 * 45
    told = [r.getMessage() for r in caplog.records if "without timestamps" in r.getMessage()]
    assert told == [f"raw: {raw} has packets without timestamps; timing them at 15 fps"], "said once, not per loop"


def test_a_one_frame_looping_file_says_so_once_and_backs_off_more_each_time(tmp_path, caplog):
    """Regression (issue 9, defect 9): a looping single-frame file was reopened in a busy loop with no log
    line. Now it waits a backoff delay before every reopen, growing (nothing usable came of it), and
    says once that the file gives no usable video."""
    one = make_video(tmp_path / "one.mp4", VideoSpec(duration_s=1 / 15))
    caplog.set_level(logging.INFO, logger="edge_media.sources.video")
    stop = CountingStop(limit=6)
    backoff = Backoff(initial_s=1.0, cap_s=30.0)
    src = VideoSource(SourceSpec(str(one), loop=True), name="still", stop_event=stop, backoff=backoff)
    events = list(islice(src, 500))
    assert len(events) < 500 and src.stats.sessions == 6
    assert backoff.attempts == 6, "never reset: no session was usable, so the delay keeps growing"
    assert all(w >= 1.0 for w in stop.waits) and max(stop.waits) > 4.0
    told = [r.getMessage() for r in caplog.records if "no usable video" in r.getMessage()]
    assert len(told) == 1 and "reopening it with growing backoff" in told[0]


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (640, 8)])
def test_frames_too_small_for_detection_are_refused_clearly(tmp_path, size):
    """Regression (issue 9, defect 10): a 1x1 video made the detect size 0 wide and cv2.resize asserted,
    killing the camera's reader with a traceback."""
    w, h = size
    path = tiny_video(tmp_path / f"tiny{w}x{h}.mp4", w, h)
    with pytest.raises(SourceError) as err:
        list(VideoSource(SourceSpec(str(path)), name="camera tiny"))
    assert str(err.value) == (f"camera tiny: {path} has {w}x{h} frames, too small to detect motion in "
                              "(detect frames need at least 16x16 pixels)")
    assert "\n" not in str(err.value)
    recorded = [e for e in VideoSource(SourceSpec(str(path), detect_width=None)) if isinstance(e, MediaPacket)]
    assert len(recorded) == 10, "a record-only reader (no detection) still takes it"


def test_detect_size_refuses_less_than_one_motion_cell():
    assert detect_size(32, 32, 320) == (32, 32)
    assert detect_size(1280, 64, 320) == (320, 16)
    for w, h in [(1, 1), (15, 480), (1280, 56)]:
        with pytest.raises(ValueError, match="too small to detect motion"):
            detect_size(w, h, 320)


def test_an_unexpected_error_while_reading_is_logged_once_and_the_source_reopened(ts_file, caplog):
    """Regression (issue 9, defect 10): an exception that was not an FFmpeg error (cv2, a bug) ended the
    reader for good, live cameras included. Now the session ends with a Disconnected, the traceback is
    logged once, and the source reopens after its backoff."""
    calls = 0

    def gate() -> bool:  # the consumer's decode gate fails on the 10th packet of every session
        nonlocal calls
        calls += 1
        if calls % 45 == 10:
            raise RuntimeError("injected bug")
        return True

    caplog.set_level(logging.INFO, logger="edge_media.sources.video")
    stop = CountingStop(limit=3)
    src = VideoSource(SourceSpec(str(ts_file), loop=True), name="buggy", stop_event=stop, decode_gate=gate,
                      backoff=Backoff(initial_s=0.5, cap_s=4.0))
    events = list(islice(src, 2000))
    ends = [e for e in events if isinstance(e, Disconnected)]
    assert src.stats.sessions == 3 and len(ends) == 3 and all(w >= 0.5 for w in stop.waits)
    assert all(e.reason == "reader error: RuntimeError('injected bug')" for e in ends)
    crashes = [r for r in caplog.records if "failed" in r.getMessage()]
    assert [r.exc_info is not None for r in crashes] == [True, False, False], "the traceback once, then one line"
    assert crashes[0].getMessage() == f"buggy: reading {ts_file} failed; reopening with backoff"
