"""The anonymiser: audio only, minimised, speech masked, a fresh FLAC with no metadata, allow-listed JSON.

Clips are real: H.264 + AAC encoded by PyAV and remuxed by the recorder's ClipWriter into the
fragmented MP4 the hub records, and an audio-only AAC clip like a microphone's. The output is read
back by independent readers (PyAV, ffprobe where installed, and the FLAC block headers by hand).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from edge_media.errors import EXIT_USAGE, UsageError
from edge_media.privacy.anonymise import (
    ALLOWED_KEYS,
    MAX_S,
    AnonymiseError,
    anonymise,
    month_of,
    strip_flac_metadata,
)
from edge_media.privacy.identity import camera_hash
from edge_media.privacy.speech import ModelDetector, fade_gain, mask_speech, widen
from recorder import ClipWriter

from audio_fixtures import encode_audio, make_camera_clip, pink_noise
from media import demux

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "models" / "audio_events" / "samples"
SPEECH = sorted((ROOT / "tests" / "data" / "speech").glob("speech_allison_*.flac"))
SR = 16000
CAMERA, OWNER, CLIP_ID = "front-door-cam", "alice.smithson", "c0ffee12-3456-7890-abcd-ef0123456789"
SECRET = bytes(range(32))
EXPECTED_KEYS = {"sample_id", "purpose", "predicted", "score", "corrected", "model_name", "model_version",
                 "duration_s", "sample_rate", "recipe", "month"}
FEEDBACK = dict(purpose="misdetection-feedback", predicted="dog_bark", score=0.91, corrected="nothing",
                model_name="audio_events", model_version="1.1.0", month="2026-11")

sys.path.insert(0, str(ROOT / "benchmarks"))
import speech_masking  # noqa: E402


def read(path: Path) -> np.ndarray:
    return speech_masking.read_audio(path)


def scene(rate: int = SR) -> tuple[np.ndarray, dict[str, tuple[float, float]]]:
    """Room tone, a real voice, a real dog bark, another real voice: (samples at ``rate``, spans in s)."""
    rng = np.random.default_rng(3)
    parts = [("", np.zeros(SR)), ("speech1", read(SPEECH[0])), ("", np.zeros(SR)),
             ("bark", read(SAMPLES / "dog_bark_tuxpaint.ogg")), ("", np.zeros(SR)),
             ("speech2", read(SPEECH[1])), ("", np.zeros(SR))]
    spans, pos, chunks = {}, 0, []
    for name, x in parts:
        x = x / max(np.max(np.abs(x)), 1e-9) * 0.3 if name else x
        if name:
            spans[name] = (pos / SR, (pos + len(x)) / SR)
        chunks.append(x.astype(np.float32))
        pos += len(x)
    audio = np.concatenate(chunks) + pink_noise(pos, SR, -55.0, rng)
    if rate != SR:  # the camera records at 48 kHz: resample by FFT for the encoder
        audio = np.fft.irfft(np.fft.rfft(audio), n=len(audio) * rate // SR) * (rate / SR)
    return audio.astype(np.float32), spans


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, dict[str, tuple[float, float]]]:
    """A fragmented-MP4 clip as the recorder writes it (H.264 + AAC 48 kHz), named and tagged like a home's."""
    root = tmp_path_factory.mktemp(CAMERA)
    audio, spans = scene(48000)
    source = make_camera_clip(root / f"{CAMERA}-source.mp4", audio)
    with demux(source) as (streams, packets):
        writer = ClipWriter(root / f"{CAMERA}_{OWNER}_{CLIP_ID}.mp4", streams)
        for mp in packets:
            writer.write(mp)
        clip = writer.close().path
    return clip, spans


@pytest.fixture(scope="module")
def audio_only(tmp_path_factory) -> Path:
    """An audio-only AAC clip (a microphone's) longer than MAX_S, its file tagged with the owner's name."""
    path = tmp_path_factory.mktemp("mic") / f"{OWNER}-kitchen-mic.m4a"
    x = pink_noise(int((MAX_S + 6) * SR), SR, -30.0, np.random.default_rng(5))
    encode_audio(path, x, SR)
    with av.open(str(path)) as c:  # re-mux with identifying tags, like a careless recorder might write
        tagged = path.with_name(f"{OWNER}-tagged.m4a")
        with av.open(str(tagged), "w") as out:
            out.metadata.update({"title": CAMERA, "artist": OWNER, "comment": CLIP_ID})
            s = out.add_stream_from_template(c.streams.audio[0])
            s.metadata.update({"title": OWNER, "handler_name": CAMERA})
            for pkt in c.demux(c.streams.audio[0]):
                if pkt.dts is not None:
                    pkt.stream = s
                    out.mux(pkt)
    return tagged


def probe(flac: bytes, tmp_path: Path) -> dict:
    """Independent readers: PyAV and (where installed) ffprobe, plus the FLAC metadata blocks by hand."""
    path = tmp_path / "sample.flac"
    path.write_bytes(flac)
    with av.open(str(path)) as c:
        info = {"format": c.format.name, "tags": dict(c.metadata), "streams": [
            (s.type, s.codec_context.name, s.sample_rate, s.channels, dict(s.metadata)) for s in c.streams],
            "samples": sum(f.samples for f in c.decode(audio=0))}
    assert flac[:4] == b"fLaC" and flac[4] == 0x80, "STREAMINFO must be the first and only metadata block"
    if shutil.which("ffprobe"):
        out = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json",
                                         str(path)], check=True, capture_output=True, text=True).stdout)
        info["ffprobe"] = (out["format"]["nb_streams"], out["format"].get("tags", {}),
                           [(s["codec_name"], s["sample_rate"], s["channels"], s.get("tags", {}))
                            for s in out["streams"]])
    return info


def test_recorded_clip_gives_audio_only_flac_of_the_event_span_without_metadata(recorded, tmp_path) -> None:
    clip, spans = recorded
    bark = spans["bark"]
    sample = anonymise(clip, span=bark, **FEEDBACK)
    info = probe(sample.flac, tmp_path)
    assert info["format"] == "flac" and info["tags"] == {}
    assert info["streams"] == [("audio", "flac", SR, 1, {})]
    expected = (bark[1] + 2.0) - (bark[0] - 2.0)  # the event ± 2 s, inside the clip
    assert info["samples"] / SR == pytest.approx(expected, abs=0.05)
    assert sample.meta.duration_s == pytest.approx(expected, abs=0.05)
    if "ffprobe" in info:
        assert info["ffprobe"] == (1, {}, [("flac", "16000", 1, {})])
    assert sample.key == f"samples/2026-11/{sample.sample_id}.flac"


def test_audio_only_clip_whole_is_bounded_and_its_tags_do_not_travel(audio_only, tmp_path) -> None:
    sample = anonymise(audio_only, span=None, purpose="product-improvement", predicted=None, score=None,
                       corrected=None, model_name="audio_events", model_version="1.1.0", month="2026-11")
    info = probe(sample.flac, tmp_path)
    assert info["tags"] == {} and info["streams"] == [("audio", "flac", SR, 1, {})]
    assert info["samples"] == int(MAX_S * SR)  # 36 s recorded, 30 s may leave
    assert sample.meta.predicted is None and sample.meta.corrected is None


def test_span_is_clamped_to_the_clip_and_bounded(recorded) -> None:
    clip, _ = recorded
    head = anonymise(clip, span=(0.5, 1.0), **FEEDBACK)
    assert head.meta.duration_s == pytest.approx(3.0, abs=0.05)  # 0 .. 1 + 2: no time before the clip
    long = anonymise(clip, span=(0.0, 100.0), **FEEDBACK)
    with av.open(str(clip)) as c:
        clip_s = c.duration / 1e6
    assert long.meta.duration_s == pytest.approx(min(MAX_S, clip_s), abs=0.1)


def test_json_keys_are_exactly_the_allow_list(recorded) -> None:
    clip, spans = recorded
    sample = anonymise(clip, span=spans["bark"], **FEEDBACK)
    meta = sample.meta.to_dict()
    assert set(meta) == EXPECTED_KEYS == ALLOWED_KEYS
    assert json.loads(json.dumps(meta)) == meta
    assert meta["month"] == "2026-11" and meta["sample_rate"] == SR and meta["recipe"] == "anon-v1+model"
    assert (meta["predicted"], meta["score"], meta["corrected"]) == ("dog_bark", 0.91, "nothing")
    assert json.loads(sample.json_bytes()) == meta
    assert sample.json_key == f"samples/2026-11/{sample.sample_id}.json"


def test_month_of_is_the_utc_month_only() -> None:
    assert month_of(1_790_000_000.0) == "2026-09"  # 2026-09-21T14:13:20Z
    assert month_of(1_798_761_599.0) == "2026-12"  # 2026-12-31T23:59:59Z, whatever the hub's zone


def test_no_identifier_anywhere_in_the_object_bytes(recorded, audio_only) -> None:
    clip, spans = recorded
    forbidden = [CAMERA, OWNER, CLIP_ID, SECRET.hex(), camera_hash(SECRET, CAMERA), clip.name, clip.stem,
                 clip.parent.name, audio_only.name, "Lavf", "Lavc", "ffmpeg", "encoder"]
    samples = [anonymise(clip, span=spans["bark"], **FEEDBACK),
               anonymise(audio_only, span=(1.0, 2.0), **{**FEEDBACK, "predicted": "missed", "score": None,
                                                          "corrected": "dog_bark"})]
    for sample in samples:
        blob = (sample.flac + sample.json_bytes()).lower()
        for text in forbidden:
            for encoded in (text.lower().encode(), text.lower().encode("utf-16-le")):
                assert encoded not in blob, f"{text!r} found in an anonymised object"


def test_sample_ids_are_random_uuid4_even_for_the_same_clip(recorded) -> None:
    clip, spans = recorded
    a, b = (anonymise(clip, span=spans["bark"], **FEEDBACK) for _ in range(2))
    assert a.sample_id != b.sample_id and a.key != b.key
    assert uuid.UUID(a.sample_id).version == 4 and uuid.UUID(b.sample_id).version == 4


def rms_db(x: np.ndarray, span: tuple[float, float], trim: float = 0.2) -> float:
    part = x[int((span[0] + trim) * SR):int((span[1] - trim) * SR)]
    return float(10 * np.log10(np.mean(part.astype(np.float64) ** 2) + 1e-12))


def test_speech_is_masked_and_the_bark_keeps_its_energy(recorded, tmp_path) -> None:
    clip, spans = recorded
    masked = anonymise(clip, span=None, **FEEDBACK)
    plain = anonymise(clip, span=None, **FEEDBACK, mask=False)
    (tmp_path / "m.flac").write_bytes(masked.flac)
    (tmp_path / "p.flac").write_bytes(plain.flac)
    m, p = read(tmp_path / "m.flac"), read(tmp_path / "p.flac")
    for voice in ("speech1", "speech2"):
        assert rms_db(p, spans[voice]) > -40  # the voice is there before masking ...
        assert rms_db(m, spans[voice]) < -90  # ... and silent after (digital silence, not just quieter)
    assert rms_db(m, spans["bark"], 0.0) == pytest.approx(rms_db(p, spans["bark"], 0.0), abs=0.5)
    assert masked.meta.recipe == "anon-v1+model" and plain.meta.recipe == "anon-v1+unmasked"


def test_speech_masking_meets_its_targets_on_held_out_real_speech() -> None:
    """Real voice (tests/data/speech: Asterisk prompts, held out from the audio model) beside real and synthetic
    events (models/audio_events/samples and synth.py)."""
    assert len(SPEECH) == 4
    items = speech_masking.scenes(SPEECH, 8, seed=5)  # one scene per event kind
    score = speech_masking.measure(ModelDetector(), items)
    assert score.speech_s > 10 and score.event_s > 10
    assert score.speech_audible <= 0.05
    assert score.event_lost <= 0.10


@pytest.mark.parametrize("lead_s", [0.0, 1.13])
def test_speech_at_the_very_start_or_end_of_a_clip_is_masked(lead_s) -> None:
    """Regression: the model's windows are trimmed to their centre, which left a clip's first and last
    ~0.1-0.35 s (and a tail shorter than one hop) covered by no window at all."""
    voice = read(SPEECH[2])
    voice = (voice / np.max(np.abs(voice)) * 0.3).astype(np.float32)
    x = np.concatenate([np.zeros(int(lead_s * SR), np.float32), voice])  # the voice runs to the last sample
    masked = mask_speech(x, ModelDetector()).samples
    assert np.max(np.abs(masked[int(lead_s * SR):])) == 0.0


def test_mask_is_widened_and_faded_outside_the_speech() -> None:
    mask = np.zeros(SR, bool)
    mask[8000:9600] = True  # 0.5 .. 0.6 s
    wide = widen(mask, 0.1, 0.25)
    assert np.flatnonzero(wide)[[0, -1]].tolist() == [6400, 13599]
    gain = fade_gain(wide, 0.02)
    assert np.all(gain[wide] == 0.0) and gain[0] == 1.0 and gain[-1] == 1.0
    assert 0.0 < gain[6400 - 160] < 1.0  # the fade is outside the masked span, never inside it

    class Everything:
        name = "all"

        def speech(self, samples: np.ndarray) -> np.ndarray:
            return np.ones(len(samples), bool)

    result = mask_speech(np.ones(SR, np.float32), Everything())
    assert not result.samples.any() and result.masked_s == pytest.approx(1.0)


def video_only_clip(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((72, 64), np.uint8), format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            for pkt in s.encode(frame):
                out.mux(pkt)
        for pkt in s.encode(None):
            out.mux(pkt)
    return path


@pytest.mark.parametrize("change, words", [
    ({"purpose": "marketing"}, "unknown purpose"),
    ({"corrected": "Alice's dog, not ours"}, "label token"),
    ({"predicted": "dog bark"}, "label token"),
    ({"score": 1.5}, "within 0..1"),
    ({"score": None}, "needs the model's score"),
    ({"corrected": None}, "needs the predicted"),
    ({"month": "2026-11-30"}, "YYYY-MM"),
    ({"model_version": "1.1 built by alice"}, "short token"),
    ({"span": (5.0, 2.0)}, "start <= end"),
])
def test_bad_requests_are_refused_before_decoding(recorded, change, words) -> None:
    clip, spans = recorded
    args = {**FEEDBACK, "span": spans["bark"], **change}
    with pytest.raises(AnonymiseError, match=words) as err:
        anonymise(clip, **args)
    assert isinstance(err.value, UsageError) and err.value.exit_code == EXIT_USAGE
    assert "\n" not in str(err.value)


def test_clip_without_audio_or_missing_is_a_one_line_usage_error(tmp_path) -> None:
    silent = video_only_clip(tmp_path / "video-only.mp4")
    with pytest.raises(AnonymiseError, match="video-only.mp4: no audio track") as err:
        anonymise(silent, span=None, **FEEDBACK)
    assert err.value.exit_code == EXIT_USAGE and "\n" not in str(err.value)
    with pytest.raises(AnonymiseError, match="does not exist"):
        anonymise(tmp_path / "gone.mp4", span=None, **FEEDBACK)
    (tmp_path / "junk.mp4").write_bytes(b"not media at all" * 100)
    with pytest.raises(AnonymiseError, match="junk.mp4"):
        anonymise(tmp_path / "junk.mp4", span=None, **FEEDBACK)


def test_a_span_past_the_audio_is_refused(recorded) -> None:
    clip, _ = recorded
    with pytest.raises(AnonymiseError, match="no audio between"):
        anonymise(clip, span=(500.0, 501.0), **FEEDBACK)


def test_strip_flac_metadata_refuses_what_is_not_flac() -> None:
    with pytest.raises(ValueError, match="not a FLAC"):
        strip_flac_metadata(b"OggS" + bytes(100))
