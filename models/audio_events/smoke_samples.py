"""Write the two synthetic clips a hub smoke-tests every new audio model on (``samples/``).

    python models/audio_events/smoke_samples.py

* ``smoke_alarm_t3_synthetic.ogg``: a temporal-three smoke alarm (ISO 8201: three 0.5 s pulses, 0.5 s apart,
  then 1.5 s of quiet) at 3.1 kHz, from 1 s to 10 s, in a small room (RT60 0.4 s) over fan hum 30 dB down.
  A model that does not raise ``smoke_co_alarm`` on it must never reach a hub.
* ``quiet_room_synthetic.ogg``: 8 s of fan and mains hum at -45 dBFS, above the silence gate so the model
  runs on every window. A model that raises any event on it must never reach a hub.

Fixed recipe and seed (no random phase): the decoded audio is the same on every run (the Ogg stream serial number
is not). Ogg Opus at 24 kbit/s keeps them small (the repository's sample budget).
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import av  # noqa: E402
import numpy as np  # noqa: E402

import synth  # noqa: E402

SR = 16000
SEED = 8201
OUT = HERE / "samples"
ALARM, QUIET = "smoke_alarm_t3_synthetic.ogg", "quiet_room_synthetic.ogg"


def t3_alarm(seconds: float = 10.0, onset_s: float = 1.0, f0: float = 3100.0) -> np.ndarray:
    n = int(seconds * SR)
    t = np.arange(n) / SR
    phase = (t - onset_s) % 4.0  # T3 cycle: on 0-0.5, 1-1.5, 2-2.5; quiet 2.5-4
    gate = ((t >= onset_s) & (phase < 2.5) & (phase % 1.0 < 0.5)).astype(np.float64)
    ramp = np.convolve(gate, np.ones(48) / 48, mode="same")  # 3 ms edges, as a real sounder's
    tone = np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(4 * np.pi * f0 * t)
    return (tone * ramp).astype(np.float32)


def room(x: np.ndarray, rng: np.random.Generator, rt60: float = 0.4) -> np.ndarray:
    """A small room: direct sound over exponentially decaying noise of equal energy (DRR 0 dB)."""
    n = int(rt60 * SR)
    rir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / SR / rt60)
    rir[0] = np.sqrt(np.sum(rir[1:] ** 2))
    return np.fft.irfft(np.fft.rfft(x, len(x) + n) * np.fft.rfft(rir, len(x) + n))[: len(x)].astype(np.float32)


def alarm_clip(rng: np.random.Generator) -> np.ndarray:
    x = room(t3_alarm(), rng)
    bed = synth.fan_hum(len(x), rng)
    return synth.set_level(synth.mix_at_snr(x, bed, 30.0), -22.0)


def quiet_clip(rng: np.random.Generator, seconds: float = 8.0) -> np.ndarray:
    n = int(seconds * SR)
    return synth.set_level(synth.fan_hum(n, rng) + synth.room_tone(n, rng, -60.0), -45.0)


def encoded(x: np.ndarray, codec: str = "flac") -> bytes:
    """Mono 16 kHz audio as FLAC (lossless, no tags) or, with ``codec="libopus"``, Ogg Opus at 24 kbit/s (the
    repository keeps its sample clips small; the smoke test decodes them as a hub would)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="flac" if codec == "flac" else "ogg") as out:
        stream = out.add_stream(codec, rate=SR, layout="mono")
        if codec != "flac":
            stream.bit_rate = 24000
        pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
        for i in range(0, len(pcm), 3200):
            frame = av.AudioFrame.from_ndarray(pcm[None, i:i + 3200], format="s16", layout="mono")
            frame.sample_rate = SR
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def main() -> None:
    rng = np.random.default_rng(SEED)
    for name, clip in ((ALARM, alarm_clip(rng)), (QUIET, quiet_clip(rng))):
        (OUT / name).write_bytes(encoded(clip, "libopus"))
        print(f"wrote {OUT / name} ({len(clip) / SR:.1f} s)")


if __name__ == "__main__":
    main()
