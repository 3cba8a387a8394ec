"""Speech masking for audio that leaves the hub: find voice, replace it by silence with short fades.

A feedback sample is about a dog, an alarm or glass, never about what people in the home said, so
every stretch a voice detector calls speech is silenced before the audio is encoded. The detector is
our own audio model's ``speech`` label (the shipped ONNX file, sha256-verified, onnxruntime): it was
trained to tell speech from screams, cries and barks, which generic voice-activity detectors call
voice. ``benchmarks/speech_masking.py`` measured it against Silero VAD and WebRTC's VAD on held-out
real speech beside real and synthetic events (speech left audible / event time lost, 64 scenes):
model 0.0 % / 5.6 %, Silero 0.3 % / 9.8 %, WebRTC 0 % / 100 % (it calls the room noise voice too).
So no new runtime dependency. Any object with ``name`` and ``speech()`` (:class:`SpeechDetector`)
can replace it.

Masking errs towards privacy: the detector's frames are widened by a lead and a hangover (speech
starts and trails off below a detector's threshold), and the fades run *outside* the masked span so
no masked sample keeps any of its level.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..model_files import ModelFile, inference_session, load_model_entry

SAMPLE_RATE = 16000


class SpeechDetector(Protocol):
    """Marks which samples of 16 kHz mono float32 audio are speech."""

    name: str

    def speech(self, samples: np.ndarray) -> np.ndarray:
        """A bool array as long as ``samples``: True where the detector hears a voice."""
        ...


@dataclass
class ModelDetector:
    """Our audio-event model's ``speech`` label over 0.975 s windows every ``hop_s`` seconds."""

    threshold: float = 0.5
    hop_s: float = 0.25
    # share of a speech window masked, centred: the whole window over-masks the sound next to a voice
    cover: float = 0.75
    name: str = "model"

    def speech(self, samples: np.ndarray) -> np.ndarray:
        mf, session = _model_session()
        window, column = int(mf.entry["window_samples"]), list(mf.entry["labels"]).index("speech")
        x = np.asarray(samples, np.float32)
        hop = int(self.hop_s * SAMPLE_RATE)
        starts = list(range(0, max(len(x) - window, 0) + 1, hop))
        if starts[-1] + window < len(x):
            starts.append(len(x) - window)  # the clip's tail gets a window of its own
        batch = np.stack([np.pad(x[s:s + window], (0, max(0, window - len(x[s:s + window])))) for s in starts])
        scores = session.run([str(mf.entry["output"])], {str(mf.entry["input"]): batch})[0][:, column]
        out = np.zeros(len(x), bool)
        trim = int(window * (1.0 - self.cover) / 2)
        for s, score in zip(starts, scores):
            if score >= self.threshold:  # no trim at the clip's edges: nothing else covers them
                out[s + trim if s > 0 else 0:s + window - trim if s + window < len(x) else len(x)] = True
        return out


@functools.lru_cache(maxsize=1)
def _model_session() -> tuple[ModelFile, Any]:
    """The shipped model (sha256 verified) and one session for the process: loading costs more than a clip."""
    mf = load_model_entry("audio_events")
    return mf, inference_session(mf.path)


@dataclass(frozen=True)
class MaskResult:
    samples: np.ndarray  # the masked audio, same length
    masked_s: float  # seconds silenced (including lead, hangover and fades)


def widen(mask: np.ndarray, lead_s: float, hangover_s: float) -> np.ndarray:
    """Extend each True run ``lead_s`` earlier and ``hangover_s`` later (detectors fire late, stop early)."""
    lead, hang = int(lead_s * SAMPLE_RATE), int(hangover_s * SAMPLE_RATE)
    idx = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    out = np.zeros_like(mask, bool)
    for start, stop in zip(idx[::2], idx[1::2]):
        out[max(0, start - lead):min(len(mask), stop + hang)] = True
    return out


def fade_gain(mask: np.ndarray, fade_s: float) -> np.ndarray:
    """Gain 0 on the mask, rising linearly to 1 over ``fade_s`` outside it (no clicks, no leaks)."""
    n, fade = len(mask), max(1, int(fade_s * SAMPLE_RATE))
    pos = np.arange(n)
    masked = np.where(mask, pos, -(10 ** 9))
    before = np.maximum.accumulate(masked)  # nearest masked index at or before each sample
    masked_rev = np.where(mask, pos, 10 ** 9)[::-1]
    after = np.minimum.accumulate(masked_rev)[::-1]  # nearest masked index at or after
    dist = np.minimum(pos - before, after - pos)
    return np.clip(dist / fade, 0.0, 1.0).astype(np.float32)


def mask_speech(samples: np.ndarray, detector: SpeechDetector, *, lead_s: float = 0.1,
                hangover_s: float = 0.25, fade_s: float = 0.02) -> MaskResult:
    """Silence what ``detector`` calls speech (16 kHz mono float32 in and out)."""
    x = np.asarray(samples, np.float32)
    if len(x) == 0:
        return MaskResult(x, 0.0)
    gain = fade_gain(widen(detector.speech(x), lead_s, hangover_s), fade_s)
    return MaskResult((x * gain).astype(np.float32), float(np.count_nonzero(gain < 1.0)) / SAMPLE_RATE)
