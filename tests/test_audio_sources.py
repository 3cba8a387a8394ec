"""Audio sources on real encoded media: files (AAC/MP4, FLAC, Opus), a camera's AAC track through
VideoSource, the microphone ring buffer (and a real device where one exists), end to end into events."""

from __future__ import annotations

import logging
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest

from edge_media.audio import (
    AudioDetector,
    AudioEventLogic,
    AudioEventModel,
    AudioFileSource,
    AudioRing,
    AudioSourceError,
    AudioWindower,
    CameraAudioDecoder,
    MicSource,
    MicUnavailable,
)
from edge_media.sources import SourceSpec, VideoSource
from edge_media.tools.samples import VideoSpec, make_video
from recorder.packets import MediaPacket

from audio_fixtures import alarm_scene, encode_audio, make_camera_clip, write_models_dir

SR = 16000


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, float]:
    return alarm_scene(48000)  # 2 s digital silence, 2 s noise, 8 s T3 alarm in noise, 3 s noise


@pytest.fixture(scope="module")
def media(tmp_path_factory, scene) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("audio")
    samples, _ = scene
    flac_samples, _ = alarm_scene(44100)
    return {
        "mp4": encode_audio(root / "alarm.mp4", samples, 48000),
        "flac": encode_audio(root / "alarm.flac", flac_samples, 44100),
        "ogg": encode_audio(root / "alarm.ogg", samples, 48000),
        "camera": make_camera_clip(root / "camera.mp4", samples),
        "camera_ts": make_camera_clip(root / "camera.ts", samples),
    }


@pytest.fixture
def tone_model(tmp_path) -> AudioEventModel:
    return AudioEventModel.from_manifest(directory=write_models_dir(tmp_path / "models"))


def assert_contiguous(blocks) -> int:
    """Every block starts exactly where the samples before it end; returns the sample count."""
    n, t0 = 0, blocks[0].time
    for block in blocks:
        assert block.samples.dtype == np.float32 and block.samples.ndim == 1
        assert block.time == pytest.approx(t0 + n / SR, abs=1e-9)
        n += len(block.samples)
    return n


def onset_of(blocks, level: float = 0.1) -> float:
    """Stream time of the first sample louder than ``level`` (the alarm; the noise is -40 dBFS)."""
    for block in blocks:
        loud = np.flatnonzero(np.abs(block.samples) > level)
        if len(loud):
            return block.time + loud[0] / SR
    raise AssertionError("no loud sample")


@pytest.mark.parametrize("kind", ["mp4", "flac", "ogg", "camera", "camera_ts"])
def test_file_source_gives_16k_mono_float32_with_exact_times(media, scene, kind):
    src = AudioFileSource(media[kind])
    blocks = list(src)
    n = assert_contiguous(blocks)
    assert abs(n - 15.0 * SR) < 0.05 * SR  # 15 s of audio, give or take codec padding
    assert abs(blocks[0].time) < 0.03  # t=0 is the start (the video's, for camera files)
    assert all(len(b.samples) == 8000 for b in blocks[:-1])
    assert onset_of(blocks) == pytest.approx(scene[1], abs=0.03)  # the alarm is where it was put
    assert src.stats.decode_errors == 0


def test_file_source_refuses_unreadable_files(tmp_path):
    with pytest.raises(AudioSourceError, match="cannot open"):
        list(AudioFileSource(tmp_path / "absent.wav"))
    junk = tmp_path / "junk.flac"
    junk.write_bytes(b"this is not audio" * 100)
    with pytest.raises(AudioSourceError, match="no decodable audio"):
        list(AudioFileSource(junk))
    silent_video = make_video(tmp_path / "noaudio.mp4", VideoSpec(width=64, height=48, duration_s=0.5))
    with pytest.raises(AudioSourceError, match="no audio track"):
        list(AudioFileSource(silent_video))


def camera_blocks(path: Path, time_shift=lambda mp: 0.0):
    """Run a camera file through VideoSource and decode its audio packets as the pipeline will."""
    decoder, blocks, audio_packets = None, [], []
    for ev in VideoSource(SourceSpec(str(path), detect_width=None)):
        if hasattr(ev, "streams"):  # Connected: one decoder per connection
            stream = next(s for s in ev.streams.values() if s.type == "audio")
            decoder = CameraAudioDecoder(stream, name="cam")
        elif isinstance(ev, MediaPacket) and not ev.is_video:
            blocks += decoder.decode(ev.packet, ev.time + time_shift(ev))  # before the recorder
            audio_packets.append(ev)
    return decoder, blocks + decoder.flush(), audio_packets


@pytest.mark.parametrize("kind", ["camera", "camera_ts"])
def test_camera_decoder_follows_the_video_sources_clock(media, scene, kind):
    decoder, blocks, packets = camera_blocks(media[kind])
    assert decoder.stats.decode_errors == 0 and decoder.stats.discontinuities == 0
    n = assert_contiguous(blocks)
    assert abs(n - 15.0 * SR) < 0.05 * SR
    assert blocks[0].time == pytest.approx(packets[0].time, abs=0.03)
    assert onset_of(blocks) == pytest.approx(scene[1], abs=0.03)


def test_camera_packets_still_remux_after_decoding(media, tmp_path):
    """The clip keeps its audio: decoding first leaves the packets intact for the recorder."""
    _, _, packets = camera_blocks(media["camera"])
    out_path = tmp_path / "clip.mp4"
    with av.open(str(media["camera"])) as src, av.open(str(out_path), "w") as out:
        ostream = out.add_stream_from_template(src.streams.audio[0])
        for mp in packets:
            mp.packet.stream = ostream
            out.mux(mp.packet)
    with av.open(str(out_path)) as clip:
        assert clip.streams.audio[0].codec_context.name == "aac"
        assert sum(1 for p in clip.demux() if p.dts is not None) == len(packets)


def test_repo_sample_video_audio_decodes_to_its_tone(tmp_path):
    path = make_video(tmp_path / "s.mp4", VideoSpec(width=160, height=96, duration_s=2.0, audio=True,
                                                    audio_tone_hz=440.0))
    _, blocks, _ = camera_blocks(path)
    x = np.concatenate([b.samples for b in blocks])
    spectrum = np.abs(np.fft.rfft(x[SR // 2 : SR // 2 + SR]))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 Hz bins over 1 s


def test_camera_decoder_counts_and_logs_corrupt_packets_once(media, caplog):
    with av.open(str(media["camera"])) as container:
        decoder = CameraAudioDecoder(container.streams.audio[0], name="porch")
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                bad = av.Packet(b"\xff" * 7 + bytes(range(200)))
                assert decoder.decode(bad, 1.0) == []
    assert decoder.stats.decode_errors >= 1
    assert sum("porch" in r.getMessage() for r in caplog.records) == 1


def test_end_to_end_alarm_triggers_within_a_second_and_silence_skips_the_model(media, scene, tone_model):
    model_rows = []
    predict = tone_model.predict

    def counting_predict(windows):
        model_rows.extend(np.sqrt(np.mean(windows.astype(np.float64) ** 2, axis=1)))
        return predict(windows)

    tone_model.predict = counting_predict
    logic = AudioEventLogic("porch", tone_model.labels, tone_model.info.thresholds, min_duration_s=0.5,
                            model_version=tone_model.version)
    detector = AudioDetector(tone_model, logic, AudioWindower())
    _, blocks, _ = camera_blocks(media["camera"])
    results = [r for b in blocks for r in detector.push(b.samples, b.time)]
    times = [r.time for r in results]
    assert times == [times[0] + k * 7800 / SR for k in range(len(times))]  # exact, from sample counts
    silent = [r for r in results if r.silent]
    assert len(silent) == 3  # windows lying wholly in the 2 s of digital silence
    assert len(model_rows) == len(results) - len(silent)
    assert min(model_rows) > 10 ** (-60 / 20)  # nothing below the gate reached the model
    starts = [t for r in results for t in r.transitions if t.kind == "start"]
    assert [s.event.label for s in starts] == ["smoke_co_alarm"]
    ev, onset = starts[0].event, scene[1]
    decided = next(r.time for r in results if starts[0] in r.transitions) + 15600 / SR
    assert onset - 15600 / SR <= ev.start <= onset + 1.0 and decided <= onset + 1.0
    ends = [t for r in results for t in r.transitions if t.kind == "end"]
    assert len(ends) == 1 and ends[0].event.end == pytest.approx(onset + 8.0, abs=1.5)


def test_timestamp_jump_resets_the_windows(media):
    jump = 20.0
    _, blocks, _ = camera_blocks(media["camera"], lambda mp: jump if mp.time >= 7.0 else 0.0)
    windower = AudioWindower()
    windows = [w for b in blocks for w in windower.push(b.samples, b.time)]
    assert windower.stats.discontinuities == 1
    after = [w for w in windows if w.time > 7.0 + jump - 1]
    before = [w for w in windows if w.time < 7.0]
    assert before and after and after[0].time >= 7.0 + jump - 0.05  # no window spans the gap
    assert [w.time for w in after] == [after[0].time + k * 7800 / SR for k in range(len(after))]


# -- microphone -------------------------------------------------------------------------------------

def fake_callback(ring: AudioRing, block: np.ndarray, status: int = 0) -> None:
    ring.sounddevice_callback(block.reshape(-1, 1), len(block), None, status)


def test_ring_returns_what_the_callback_wrote_across_wraparound():
    ring = AudioRing(1000)
    ramp = np.arange(5000, dtype=np.float32)
    got, pos = [], 0
    for size in [300, 300, 300, 300, 700, 10, 999]:
        fake_callback(ring, ramp[pos : pos + size])
        pos += size
        index, samples = ring.read()
        assert index == sum(len(g) for g in got)
        got.append(samples)
    np.testing.assert_array_equal(np.concatenate(got), ramp[:pos])
    assert ring.dropped == 0 and ring.read()[1].size == 0


def test_ring_overrun_is_detected_and_shows_as_a_time_gap():
    ring = AudioRing(1000)
    ramp = np.arange(3000, dtype=np.float32)
    for k in range(5):
        fake_callback(ring, ramp[k * 500 : (k + 1) * 500], status=1 if k == 4 else 0)
    index, samples = ring.read()
    assert index == 1500 and ring.dropped == 1500 and ring.status_flags == 1
    np.testing.assert_array_equal(samples, ramp[1500:2500])
    fake_callback(ring, ramp[:2500])  # one block longer than the ring keeps only its tail
    index, samples = ring.read()
    assert index == 2500 + 1500 and len(samples) == 1000


def test_ring_callback_does_not_allocate_audio_buffers():
    ring = AudioRing(SR * 10)
    block = np.random.default_rng(0).standard_normal((SR, 1)).astype(np.float32)  # 64 KB
    fake_callback(ring, block[:, 0])
    tracemalloc.start()
    try:
        for _ in range(20):
            ring.sounddevice_callback(block, SR, None, 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16_000  # a copy of the block would be 64 KB


def test_mic_source_read_through_the_same_callback_without_a_device():
    mic = MicSource(device=None, block_ms=100)
    assert mic.read(timeout=0.01) is None  # nothing yet
    producer_blocks = [np.full(1600, i, np.float32) for i in range(30)]

    def produce():
        for block in producer_blocks:
            fake_callback(mic.ring, block)
            time.sleep(0.002)

    thread = threading.Thread(target=produce)
    thread.start()
    got = []
    while sum(len(b.samples) for b in got) < 30 * 1600:
        block = mic.read(timeout=2.0)
        assert block is not None
        got.append(block)
    thread.join()
    assert_contiguous(got)
    assert got[0].time == 0.0
    np.testing.assert_array_equal(np.concatenate([b.samples for b in got]), np.concatenate(producer_blocks))
    mic.stop()
    assert mic.read(timeout=1.0) is None  # stopped: returns at once


def test_missing_sounddevice_raises_mic_unavailable_naming_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as if not installed
    with pytest.raises(MicUnavailable) as err:
        MicSource(device="hw:1").start()
    msg = str(err.value)
    assert "edge-media[mic]" in msg and "libportaudio2" in msg and "python -m sounddevice" in msg


def test_unknown_device_raises_mic_unavailable():
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: the module is there, PortAudio is not
        pytest.skip(f"sounddevice/PortAudio not available: {exc}")
    with pytest.raises(MicUnavailable, match="python -m sounddevice"):
        MicSource(device="no such microphone 1234").start()


def test_real_microphone_delivers_blocks():
    """Only where PortAudio and an input device exist; elsewhere skipped, never failed."""
    try:
        import sounddevice as sd

        sd.query_devices(kind="input")
    except Exception as exc:
        pytest.skip(f"no microphone here: {exc}")
    with MicSource(device=None, block_ms=50) as mic:
        block = mic.read(timeout=3.0)
    assert block is not None and block.samples.dtype == np.float32 and len(block.samples) >= 800
