"""The anonymiser: the only way a recording's audio leaves the hub for the model partner.

From a recorded clip it keeps the audio only, and only the part that matters (the flagged event
± ``PAD_S``, or the first ``MAX_S`` of the clip for a missed event or product improvement): data
minimisation. The audio is decoded, resampled to 16 kHz mono, speech is silenced
(:mod:`.speech`), and it is re-encoded as FLAC in a fresh container whose only metadata block is
STREAMINFO (no Vorbis comment, no vendor string, no tags; FFmpeg's bitexact mode first, then every
other block dropped). The sample id is a uuid4: nothing about it derives from the clip, camera,
owner, hub or install secret.

What travels beside the audio is :class:`SampleMeta`, a frozen dataclass whose fields ARE the
allow-list: nothing else can be serialised, and every string in it is a short token checked here
(no free text can smuggle a name or a note out).

This module reads a clip and returns bytes; it never writes a file, a table or an object store
(the feedback outbox owns those).
"""

from __future__ import annotations

import io
import json
import re
import uuid
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..audio.sources import AudioFileSource, AudioSourceError
from ..errors import UsageError
from .speech import SAMPLE_RATE, ModelDetector, SpeechDetector, mask_speech

RECIPE_VERSION = "anon-v1"  # bump when the cut, the resampling, the masking or the encoding changes
PAD_S = 2.0  # kept around a flagged event: its onset and tail without the minutes around it
MAX_S = 30.0  # the most one sample may carry (a missed event, product improvement, a long event)
PURPOSES = ("misdetection-feedback", "product-improvement")
MISSED = "missed"  # ``predicted`` when the owner flags an event the model did not report
NOTHING = "nothing"  # ``corrected`` when the owner says there was no event at all
_TOKEN = re.compile(r"[a-z][a-z0-9_]{0,39}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,39}")
_MONTH = re.compile(r"(19|20)\d\d-(0[1-9]|1[0-2])")


class AnonymiseError(UsageError):
    """A clip or a request the anonymiser cannot turn into a sample (nothing was produced)."""


@dataclass(frozen=True)
class SampleMeta:
    """The sample's JSON: these fields and no others leave the hub (the allow-list)."""

    sample_id: str
    purpose: str
    predicted: str | None  # the model's label, "missed", or None (product improvement)
    score: float | None  # the model's score for ``predicted`` (None when missed / not flagged)
    corrected: str | None  # the owner's label, "nothing", or None (not flagged)
    model_name: str
    model_version: str
    duration_s: float
    sample_rate: int
    recipe: str
    month: str  # YYYY-MM of the recording: coarse on purpose

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


ALLOWED_KEYS = frozenset(f.name for f in fields(SampleMeta))


@dataclass(frozen=True)
class AnonymisedSample:
    flac: bytes
    meta: SampleMeta

    @property
    def sample_id(self) -> str:
        return self.meta.sample_id

    @property
    def key(self) -> str:
        """Object key of the audio in the feedback bucket (``samples/<YYYY-MM>/<uuid4>.flac``)."""
        return f"samples/{self.meta.month}/{self.meta.sample_id}.flac"

    @property
    def json_key(self) -> str:
        """Object key of the sample's JSON, beside the audio."""
        return self.key.removesuffix(".flac") + ".json"

    def json_bytes(self) -> bytes:
        """The JSON object exactly as it is sent: the allow-listed fields, sorted, UTF-8."""
        return json.dumps(self.meta.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def month_of(wall: float) -> str:
    """The UTC month (YYYY-MM) of a recording's wall-clock start: the only time a sample carries."""
    return datetime.fromtimestamp(wall, tz=UTC).strftime("%Y-%m")


@dataclass(frozen=True)
class Request:
    """What the caller knows about the sample, checked before any decoding."""

    purpose: str
    predicted: str | None
    score: float | None
    corrected: str | None
    model_name: str
    model_version: str
    month: str


def anonymise(clip: Path | str, *, span: tuple[float, float] | None, purpose: str, predicted: str | None,
              score: float | None, corrected: str | None, model_name: str, model_version: str, month: str,
              speech: SpeechDetector | None = None, mask: bool = True) -> AnonymisedSample:
    """One anonymised sample from ``clip``.

    ``span`` is the event's (start, end) in seconds from the clip's start (the sidecar's clock), or
    None for the whole clip up to ``MAX_S``. ``speech`` picks the detector (default: our model's
    ``speech`` label, the measured best); ``mask=False`` exists for measurement only.
    """
    req = Request(purpose, predicted, score, corrected, model_name, model_version, month)
    check_request(req)
    start, stop = cut(span)
    samples = decode_window(Path(clip), start, stop)
    detector = speech if speech is not None else ModelDetector()
    if mask:
        samples = mask_speech(samples, detector).samples
    recipe = f"{RECIPE_VERSION}+{detector.name if mask else 'unmasked'}"
    meta = SampleMeta(sample_id=str(uuid.uuid4()), purpose=purpose, predicted=predicted,
                      score=None if score is None else round(float(score), 3), corrected=corrected,
                      model_name=model_name, model_version=model_version,
                      duration_s=round(len(samples) / SAMPLE_RATE, 3), sample_rate=SAMPLE_RATE,
                      recipe=recipe, month=month)
    return AnonymisedSample(encode_flac(samples), meta)


def check_request(req: Request) -> None:
    """Every string is a short token from a known set or shape: free text cannot leave the hub."""
    if req.purpose not in PURPOSES:
        raise AnonymiseError(f"unknown purpose {req.purpose!r}; expected one of {', '.join(PURPOSES)}")
    for name, value in (("predicted", req.predicted), ("corrected", req.corrected)):
        if value is not None and not _TOKEN.fullmatch(value):
            raise AnonymiseError(f"{name} label must be a label token (a-z, 0-9, _), got {value!r}")
    if req.predicted is not None and req.predicted != MISSED and req.score is None:
        raise AnonymiseError("a predicted label needs the model's score")
    if req.score is not None and not 0.0 <= float(req.score) <= 1.0:
        raise AnonymiseError(f"score must be within 0..1, got {req.score}")
    if req.purpose == "misdetection-feedback" and (req.predicted is None or req.corrected is None):
        raise AnonymiseError("misdetection feedback needs the predicted (or 'missed') and the corrected label")
    for name, value in (("model name", req.model_name), ("model version", req.model_version)):
        if not _VERSION.fullmatch(value):
            raise AnonymiseError(f"{name} must be a short token, got {value!r}")
    if not _MONTH.fullmatch(req.month):
        raise AnonymiseError(f"month must be YYYY-MM, got {req.month!r}")


def cut(span: tuple[float, float] | None) -> tuple[float, float]:
    """The part of the clip to keep (seconds from its start), before clamping to its length."""
    if span is None:
        return 0.0, MAX_S
    begin, end = float(span[0]), float(span[1])
    if not (np.isfinite(begin) and np.isfinite(end)) or end < begin or end < 0:
        raise AnonymiseError(f"event span must be finite with start <= end, got {span}")
    start = max(0.0, begin - PAD_S)
    return start, min(end + PAD_S, start + MAX_S)


def decode_window(clip: Path, start: float, stop: float) -> np.ndarray:
    """16 kHz mono float32 of [start, stop) of ``clip``'s first audio track, clamped to the audio."""
    if not clip.is_file():
        raise AnonymiseError(f"clip file {clip.name} does not exist")
    first, last = round(start * SAMPLE_RATE), round(stop * SAMPLE_RATE)
    out = np.zeros(last - first, np.float32)
    end = 0  # samples of the window that the audio reached
    try:
        for block in AudioFileSource(clip):
            at = round(block.time * SAMPLE_RATE) - first
            if at >= len(out):
                break  # past the window: the rest of the clip is never decoded
            lo, hi = max(0, -at), min(len(block.samples), len(out) - at)
            if hi > lo:
                out[at + lo:at + hi] = block.samples[lo:hi]
                end = max(end, at + hi)
    except AudioSourceError as exc:
        raise AnonymiseError(f"clip {clip.name}: {_why(exc)}") from exc
    if end == 0:
        raise AnonymiseError(f"clip {clip.name} has no audio between {start:.1f} s and {stop:.1f} s")
    return out[:end]


def _why(exc: AudioSourceError) -> str:
    text = str(exc)
    return "no audio track" if text.endswith("has no audio track") else "unreadable audio"


def encode_flac(samples: np.ndarray) -> bytes:
    """FLAC, 16 kHz mono s16, in a fresh bitexact container, then stripped to STREAMINFO only."""
    buf = io.BytesIO()
    # bitexact: no "Lavf…" encoder tag and no version-dependent bytes (the same audio, the same file)
    with av.open(buf, "w", format="flac", options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream("flac", rate=SAMPLE_RATE, options={"flags": "+bitexact"})
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.clip(samples, -1.0, 1.0).reshape(1, -1).astype(np.float32),
                                           format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, 0, Fraction(1, SAMPLE_RATE)
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return strip_flac_metadata(buf.getvalue())


def strip_flac_metadata(data: bytes) -> bytes:
    """Keep only the STREAMINFO block (RFC 9639 §8): the Vorbis comment's vendor string and padding go."""
    if data[:4] != b"fLaC":
        raise ValueError("not a FLAC stream")
    pos, streaminfo = 4, b""
    while True:
        header = data[pos]
        length = int.from_bytes(data[pos + 1:pos + 4], "big")
        if header & 0x7F == 0:
            streaminfo = data[pos + 4:pos + 4 + length]
        pos += 4 + length
        if header & 0x80:  # last metadata block; audio frames follow
            break
    if len(streaminfo) != 34:
        raise ValueError("FLAC stream without a valid STREAMINFO block")
    return b"fLaC" + bytes([0x80]) + (34).to_bytes(3, "big") + streaminfo + data[pos:]
